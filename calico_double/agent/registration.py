"""Node start-up writes: cluster config, the node's BGP address and AS, the default pool.

Mirrors what calico/node v2.6's startup does in etcd's v2 keyspace, including its refusal
to start when another node already uses this node's IPv4 address.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

from . import CALICO_VERSION
from .etcd import EtcdClient
from .ipam import DEFAULT_POOL, POOL_DIR, cidr_to_name, pool_json

log = logging.getLogger(__name__)

DEFAULT_AS = 64512
BGP_HOSTS = "/calico/bgp/v1/host"
BGP_GLOBAL = "/calico/bgp/v1/global"


class NodeConflict(RuntimeError):
    """Another node is registered with this node's IP address."""


@dataclass(frozen=True)
class Registration:
    node: str
    ipv4: IPv4Interface  # address with the subnet it was found on (network_v4)
    ipv6: str | None
    as_num: int | None  # node-specific AS, None = use the global one


def host_key(node: str) -> str:
    return f"/calico/v1/host/{node}"


def stored_ipv4(etcd: EtcdClient, node: str) -> str | None:
    return etcd.get_value(f"{BGP_HOSTS}/{node}/ip_addr_v4") or None


def check_conflicts(etcd: EtcdClient, node: str, ip: IPv4Address) -> None:
    """Refuse to share an IPv4 address with another node (BGP would peer with ourselves)."""
    for host in etcd.children(BGP_HOSTS):
        if host.name == node:
            continue
        other = etcd.get_value(f"{BGP_HOSTS}/{host.name}/ip_addr_v4")
        if other and other == str(ip):
            raise NodeConflict(
                f"Calico node '{host.name}' is already using the IPv4 address {ip}. "
                f"Remove the stale node (etcd keys {BGP_HOSTS}/{host.name} and "
                f"{host_key(host.name)}) or fix NODENAME/IP, then restart."
            )


def ensure_cluster_config(etcd: EtcdClient) -> None:
    """Cluster-wide keys: create when absent, so nodes starting together do not clobber each other."""
    if etcd.create_if_absent("/calico/v1/config/CalicoVersion", CALICO_VERSION):
        log.info("Initialised CalicoVersion %s", CALICO_VERSION)
    etcd.create_if_absent("/calico/v1/config/InterfacePrefix", "cali")
    etcd.set("/calico/v1/Ready", "true")
    if etcd.create_if_absent(f"{BGP_GLOBAL}/as_num", str(DEFAULT_AS)):
        log.info("Set global AS number to %d", DEFAULT_AS)
    if etcd.create_if_absent(f"{BGP_GLOBAL}/node_mesh", json.dumps({"enabled": True})):
        log.info("Enabled the node-to-node BGP mesh")
    etcd.create_if_absent(f"{BGP_GLOBAL}/loglevel", "info")


def ensure_default_pool(etcd: EtcdClient, no_default_pools: bool) -> None:
    if no_default_pools:
        log.info("NO_DEFAULT_POOLS is set: not creating the default IPv4 pool")
        return
    if etcd.children(POOL_DIR):
        return  # Calico only adds the default pool when no pool exists yet.
    if etcd.create_if_absent(f"{POOL_DIR}/{cidr_to_name(DEFAULT_POOL)}", pool_json(DEFAULT_POOL)):
        log.info("Created default IPv4 pool (%s) with NAT outgoing false. IPIP mode: off", DEFAULT_POOL)


def register_node(etcd: EtcdClient, reg: Registration) -> None:
    check_conflicts(etcd, reg.node, reg.ipv4.ip)
    etcd.set(f"{host_key(reg.node)}/metadata", "{}")
    etcd.set(f"{BGP_HOSTS}/{reg.node}/ip_addr_v4", str(reg.ipv4.ip))
    etcd.set(f"{BGP_HOSTS}/{reg.node}/network_v4", str(reg.ipv4.network))
    etcd.set(f"{BGP_HOSTS}/{reg.node}/ip_addr_v6", reg.ipv6 or "")
    if reg.as_num is not None:
        etcd.set(f"{BGP_HOSTS}/{reg.node}/as_num", str(reg.as_num))
    else:
        # AS="" means "use the global AS": drop a node AS left by an earlier start.
        etcd.delete_if_present(f"{BGP_HOSTS}/{reg.node}/as_num")
    log.info("Registered node %s with IPv4 address %s (AS %s)", reg.node, reg.ipv4.ip,
             reg.as_num if reg.as_num is not None else "global")

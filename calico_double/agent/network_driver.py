"""Docker NetworkDriver `calico`: workload endpoints in etcd, veths, /32 routes, proxy ARP.

Follows projectcalico/libnetwork-plugin for the protocol answers. What felix did on the
host for an endpoint (host route, proxy ARP) happens here at Join time.
"""

from __future__ import annotations

import json
import logging
from ipaddress import IPv4Address

from .etcd import EtcdClient, EtcdKeyNotFound
from .ipam import parse_ipv4
from .netdev import CommandError, NetDev
from .plugin_server import Handler, PluginError

log = logging.getLogger(__name__)

FIXED_MAC = "ee:ee:ee:ee:ee:ee"
GATEWAY = "169.254.1.1"
ROUTE_CONNECTED = 1
IF_PREFIX = "cali"
KNOWN_OPTIONS = {"com.docker.network.enable_ipv6"}


def host_ifname(endpoint_id: str) -> str:
    return "cali" + endpoint_id[:11]


def temp_ifname(endpoint_id: str) -> str:
    return "temp" + endpoint_id[:11]


def endpoint_key(node: str, endpoint_id: str) -> str:
    return f"/calico/v1/host/{node}/workload/libnetwork/libnetwork/endpoint/{endpoint_id}"


def profile_key(network_id: str) -> str:
    return f"/calico/v1/policy/profile/{network_id}"


def _reject_options(options: dict) -> None:
    """Refuse docker network create flags Calico does not implement (--internal, -o ...)."""
    for key, value in sorted(options.items()):
        if key in KNOWN_OPTIONS:
            continue
        if isinstance(value, bool):
            if value:
                flag = key.removeprefix("com.docker.network.")
                raise PluginError(f"Calico driver does not support the flag --{flag}.")
        elif isinstance(value, dict):
            if value:
                flags = sorted(value)
                word = "flags" if len(flags) > 1 else "flag"
                raise PluginError(f"Calico driver does not support the {word} {', '.join(flags)}.")
        elif value not in (None, ""):
            raise PluginError(f"Calico driver does not support the flag {key} ({value}).")


class NetworkDriver:
    def __init__(self, etcd: EtcdClient, node: str, netdev: NetDev, veth_mtu: int | None = None) -> None:
        self.etcd = etcd
        self.node = node
        self.netdev = netdev
        self.veth_mtu = veth_mtu

    def routes(self) -> dict[str, Handler]:
        def empty(_: dict) -> dict:
            return {}

        return {
            "/Plugin.Activate": lambda _: {"Implements": ["NetworkDriver"]},
            "/NetworkDriver.GetCapabilities": lambda _: {"Scope": "global"},
            "/NetworkDriver.CreateNetwork": self.create_network,
            "/NetworkDriver.DeleteNetwork": self.delete_network,
            "/NetworkDriver.AllocateNetwork": empty,
            "/NetworkDriver.FreeNetwork": empty,
            "/NetworkDriver.CreateEndpoint": self.create_endpoint,
            "/NetworkDriver.EndpointOperInfo": lambda _: {"Value": {}},
            "/NetworkDriver.DeleteEndpoint": self.delete_endpoint,
            "/NetworkDriver.Join": self.join,
            "/NetworkDriver.Leave": self.leave,
            "/NetworkDriver.DiscoverNew": empty,
            "/NetworkDriver.DiscoverDelete": empty,
            "/NetworkDriver.ProgramExternalConnectivity": empty,
            "/NetworkDriver.RevokeExternalConnectivity": empty,
        }

    # -- networks ----------------------------------------------------------------------------
    def create_network(self, req: dict) -> dict:
        log.info("CreateNetwork %s", req)
        network_id = _required(req, "NetworkID")
        _reject_options(req.get("Options") or {})
        for data in req.get("IPv4Data") or []:
            # Only our IPAM answers RequestPool with the dummy 0.0.0.0/0 gateway.
            if data.get("Gateway") != "0.0.0.0/0":
                raise PluginError("Non-Calico IPAM driver is used. Use --ipam-driver calico-ipam")
        for data in req.get("IPv6Data") or []:
            if data.get("AddressSpace") != "CalicoGlobalAddressSpace":
                raise PluginError("Non-Calico IPAM driver is used")
        self.ensure_profile(network_id)
        return {}

    def ensure_profile(self, network_id: str) -> None:
        """One profile per network: allow from the network's own tag, allow all outbound."""
        base = profile_key(network_id)
        rules = {"inbound_rules": [{"action": "allow", "src_tag": network_id}],
                 "outbound_rules": [{"action": "allow"}]}
        self.etcd.create_if_absent(f"{base}/rules", json.dumps(rules))
        self.etcd.create_if_absent(f"{base}/tags", json.dumps([network_id]))
        self.etcd.create_if_absent(f"{base}/labels", json.dumps({}))

    def delete_network(self, req: dict) -> dict:
        log.info("DeleteNetwork %s", req)
        self.etcd.delete_if_present(profile_key(_required(req, "NetworkID")), recursive=True)
        return {}

    # -- endpoints ---------------------------------------------------------------------------
    def create_endpoint(self, req: dict) -> dict:
        log.info("CreateEndpoint %s", req)
        network_id = _required(req, "NetworkID")
        endpoint_id = _required(req, "EndpointID")
        iface = req.get("Interface") or {}
        if not iface.get("Address") and not iface.get("AddressIPv6"):
            raise PluginError("No address assigned for endpoint")
        ipv4_nets = []
        if iface.get("Address"):
            try:
                ipv4_nets.append(f"{parse_ipv4(iface['Address'])}/32")  # Calico always uses /32
            except ValueError as exc:
                raise PluginError(f"Parsing {iface['Address']} as CIDR failed: {exc}") from exc
        ipv6_nets = [iface["AddressIPv6"]] if iface.get("AddressIPv6") else []
        user_mac = iface.get("MacAddress") or ""
        self.ensure_profile(network_id)
        endpoint = {
            "state": "active",
            "name": host_ifname(endpoint_id),
            "mac": (user_mac or FIXED_MAC).lower(),
            "profile_ids": [network_id],
            "ipv4_nets": ipv4_nets,
            "ipv6_nets": ipv6_nets,
            "labels": {},
        }
        self.etcd.set(endpoint_key(self.node, endpoint_id), json.dumps(endpoint))
        # Docker refuses a driver that sets a MAC or address it already chose: only fill the gap.
        if user_mac:
            return {}
        return {"Interface": {"MacAddress": FIXED_MAC}}

    def delete_endpoint(self, req: dict) -> dict:
        log.info("DeleteEndpoint %s", req)
        endpoint_id = _required(req, "EndpointID")
        ip = self._endpoint_ip(endpoint_id)
        if ip is not None:
            self.netdev.delete_host_route(ip, host_ifname(endpoint_id))
        self.netdev.delete_link(host_ifname(endpoint_id))
        self.etcd.delete_if_present(endpoint_key(self.node, endpoint_id))
        return {}

    def _endpoint_ip(self, endpoint_id: str) -> IPv4Address | None:
        try:
            value = self.etcd.get(endpoint_key(self.node, endpoint_id)).value or "{}"
            nets = json.loads(value).get("ipv4_nets") or []
            return parse_ipv4(nets[0]) if nets else None
        except (EtcdKeyNotFound, ValueError, IndexError):
            return None

    # -- sandbox -----------------------------------------------------------------------------
    def join(self, req: dict) -> dict:
        log.info("Join %s", req)
        endpoint_id = _required(req, "EndpointID")
        host_if, temp_if = host_ifname(endpoint_id), temp_ifname(endpoint_id)
        try:
            self.netdev.create_veth(host_if, temp_if, FIXED_MAC, self.veth_mtu)
            # The host side answers the workload's ARP for 169.254.1.1 (and everything else).
            self.netdev.write_sysctl(f"net/ipv4/conf/{host_if}/proxy_arp", "1")
            self.netdev.write_sysctl(f"net/ipv4/neigh/{host_if}/proxy_delay", "0")
            self.netdev.write_sysctl(f"net/ipv4/conf/{host_if}/forwarding", "1")
            ip = self._endpoint_ip(endpoint_id)
            if ip is None:
                log.warning("Endpoint %s has no IPv4 address in etcd: no host route", endpoint_id)
            else:
                self.netdev.replace_host_route(ip, host_if)
        except CommandError as exc:
            self.netdev.delete_link(host_if)
            raise PluginError(f"Veth setup failed for {host_if}: {exc}") from exc
        return {
            "InterfaceName": {"SrcName": temp_if, "DstPrefix": IF_PREFIX},
            "Gateway": GATEWAY,
            "StaticRoutes": [{"Destination": f"{GATEWAY}/32", "RouteType": ROUTE_CONNECTED, "NextHop": ""}],
            "DisableGatewayService": True,
        }

    def leave(self, req: dict) -> dict:
        log.info("Leave %s", req)
        endpoint_id = _required(req, "EndpointID")
        ip = self._endpoint_ip(endpoint_id)
        if ip is not None:
            self.netdev.delete_host_route(ip, host_ifname(endpoint_id))
        self.netdev.delete_link(host_ifname(endpoint_id))
        return {}


def _required(req: dict, name: str) -> str:
    value = req.get(name)
    if not value or not isinstance(value, str):
        raise PluginError(f"missing {name}")
    return value

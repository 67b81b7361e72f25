"""The node state the read-only checks read, declared once: the read-only pass's snapshot
(calicolab/stack/snapshot.py) asks each node for all of it in one round trip, and the checks ask
with these same commands, so the snapshot answers them.

Only answers that stay put while the cluster does belong here. Counters (iptables-save), log
sizes (stat), clocks and tallies (docker info, docker logs) move on their own: they stay live,
as do etcd v3's member list (it asks `endpoint status`, whose raft index moves) and everything a
test that acts on the cluster asks.
"""

from __future__ import annotations

from calicolab.core import node_commands
from calicolab.core.config import ClusterConfig, Node
from calicolab.core.remote import read_command
from calicolab.stack import etcd_query, parsers, probes
from e2e import guide

HOSTNAME = "hostname"
FILES = ("/etc/hostname", "/etc/hosts", "/etc/sysctl.conf")
FIREWALL_UNIT_FILES = f"systemctl list-unit-files {guide.FIREWALL_SERVICE}.service --no-legend"
CALICO_NODE_ACTIVE = probes.unit_state_command("calico-node")
NODE_STATUS = node_commands.calicoctl("node status")
GET_NODE = node_commands.calicoctl("get node")
GET_POOLS = node_commands.calicoctl("get ippool -o yaml")
HOST_HAS_IPV6 = "test -d /proc/sys/net/ipv6"
UNIX_LISTENERS = "ss -xl"
PLUGIN_SOCKETS = ("/run/docker/plugins/calico.sock", "/run/docker/plugins/calico-ipam.sock")
CALICO_PROCESSES = "docker top calico-node -eo pid,comm,args"
DOCKER_VERSION = "docker version --format '{{.Server.Version}}'"
AUTHORIZED_KEYS = "cat ~vagrant/.ssh/authorized_keys"


# Answers compared by what their checks read rather than byte for byte when read again after
# the pass: BIRD prints a session's SINCE with one second of play (parsers.same_node_status),
# `ss -xl` lists every listener on the node, where the check reads the plugin's two, and
# `docker top` lists felix's short-lived children beside the services the check reads.
SAME_ANSWER = {NODE_STATUS: parsers.same_node_status, UNIX_LISTENERS: parsers.same_listeners(PLUGIN_SOCKETS),
               CALICO_PROCESSES: parsers.same_services(guide.CALICO_PROCESSES)}


def socket_file(path: str) -> str:
    return f"test -S {path}"


def bgp_address_key(name: str) -> str:
    return f"/calico/bgp/v1/host/{name}/ip_addr_v4"


def host_config_key(name: str, setting: str) -> str:
    return f"/calico/v1/host/{name}/config/{setting}"


def bird_ip_key(name: str) -> str:
    return f"/calico/v1/host/{name}/bird_ip"


def network_v4_key(name: str) -> str:
    return f"/calico/bgp/v1/host/{name}/network_v4"


def calico_keys(name: str) -> list[str]:
    """The etcd keys the Calico checks read through a node's own client URL."""
    return [*guide.CLUSTER_KEYS, *(host_config_key(name, s) for s in guide.HOST_CONFIG), bird_ip_key(name),
            network_v4_key(name), *guide.NEVER_WRITTEN, bgp_address_key(name), guide.DEFAULT_POOL_KEY,
            guide.IPV6_POOL_KEY]


def own_endpoint(cluster: ClusterConfig, spec: Node) -> str:
    """A member's own client URL (each member asked alone, not whichever answers first)."""
    return f"{cluster.etcd_scheme}://{spec.ip}:{guide.ETCD_CLIENT_PORT}"


def for_node(cluster: ClusterConfig, spec: Node) -> list[str]:
    reads = [HOSTNAME, *(read_command(f) for f in FILES), FIREWALL_UNIT_FILES, CALICO_NODE_ACTIVE, NODE_STATUS,
             GET_NODE, GET_POOLS, HOST_HAS_IPV6, UNIX_LISTENERS, *(socket_file(p) for p in PLUGIN_SOCKETS),
             CALICO_PROCESSES, DOCKER_VERSION, AUTHORIZED_KEYS, *(probes.sysctl_command(k) for k in guide.SYSCTL),
             *(etcd_query.v2_get_command(spec.ip, k) for k in calico_keys(spec.name))]
    version = cluster.versions.etcd
    if etcd_query.uses_v2_etcdctl(version):
        reads += [etcd_query.etcdctl_command(args, version, endpoints)
                  for args, endpoints in (("member list", cluster.etcd_endpoints),
                                          ("member list", own_endpoint(cluster, spec)),
                                          ("cluster-health", cluster.etcd_endpoints))]
    return reads

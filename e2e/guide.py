"""The guide's own facts, the expected values of the e2e checks. Each carries its section of
the guide (docs/guide.md, the project's account of the original Chinese guide); values the guide
does not print come from upstream Calico 2.6.1 or from first principles, and say which. Nothing
here is read from the modules under test (provision/, calicolab/)."""

from __future__ import annotations

import ipaddress

# [3] Topology and host preparation
NODES = {"node1": "192.168.223.131", "node2": "192.168.223.130"}
SUBNET = "192.168.223.0/24"
SYSCTL = {"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.ip_forward": "1"}  # [3] /etc/sysctl.conf, sysctl -p
FIREWALL_SERVICE = "firewalld"  # [3] systemctl disable --now firewalld; firewall-cmd --state: not running
# [3] "in practice 2379, 2380 and BGP 179 all matter" between the nodes
PORTS = {"etcd client": 2379, "etcd peer": 2380, "BGP": 179}

# [4] etcd
ETCD_MEMBERS = 2
ETCD_LEADERS = 1
ETCD_CLIENT_PORT, ETCD_PEER_PORT = 2379, 2380

# [5] Docker: `docker info | grep "Cluster Store"` -> Cluster Store: etcd://<the node's IP>:2379
CLUSTER_STORE = "etcd://{ip}:2379"

# [6] calico-node and calicoctl
CALICO_LOG_LINES = ("Starting libnetwork service", "Calico node started successfully")
CALICO_RUNNING = "Calico process is running."
NO_IPV6_PEERS = "No IPv6 peers found."
PEER_TYPE, PEER_STATE, PEER_INFO = "node-to-node mesh", "up", "Established"

# [7] The network test
NETWORK = "net1"
WORKLOADS = {"workload-A": "node1", "workload-B": "node2"}
# The addresses the guide's run got; Calico 2.6.1's block choice (libcalico-go, seeded by the
# hostname) gives exactly these for node1 and node2 on a fresh pool.
WORKLOAD_ADDRESSES = {"workload-A": "192.168.166.128", "workload-B": "192.168.104.0"}
POOL = ipaddress.ip_network("192.168.0.0/16")
WORKLOAD_MAC = "ee:ee:ee:ee:ee:ee"
WORKLOAD_PREFIXLEN = 32
BLOCK_PREFIXLEN = 26  # [7] route -n: 255.255.255.192 via the peer
TTL = 62  # [7] two routed hops: 64 - 2
# Upstream (libnetwork-plugin v1.1.0 Join), not printed by the guide: the workload's gateway.
WORKLOAD_GATEWAY = "169.254.1.1"


def block_of(ip: str) -> str:
    return str(ipaddress.ip_network(f"{ip}/{BLOCK_PREFIXLEN}", strict=False))


def minor(version: str) -> tuple[int, int]:
    major, minor_, *_ = version.lstrip("v").split(".")
    return int(major), int(minor_)


def minors_between(current: str, target: str) -> list[tuple[int, int]]:
    """First principles of etcd's rolling upgrades: every minor version after current up to
    target's, one at a time (etcd supports upgrades between adjacent minors only)."""
    here, goal = minor(current), minor(target)
    if goal[0] != here[0]:
        raise ValueError(f"etcd {current} -> {target} changes the major version")
    return [(here[0], m) for m in range(here[1] + 1, goal[1] + 1)] or ([goal] if current != target else [])


# -- Upstream Calico 2.6.1, not printed by the guide (the double is measured against these) ------
# calico/node startup (projectcalico/calico@v2.6.1:calico_node/startup/startup.go configureIPPools,
# createIPPool): the default pools, NAT outgoing on for IPv4, off for IPv6; IPv6 only where the
# host has /proc/sys/net/ipv6. Values as libcalico-go's etcd v2 backend stores them.
DEFAULT_POOL_KEY = "/calico/v1/ipam/v4/pool/192.168.0.0-16"
DEFAULT_POOL = {"cidr": "192.168.0.0/16", "ipip": "", "ipip_mode": "", "masquerade": True, "ipam": True,
                "disabled": False}
IPV6_POOL_KEY = "/calico/v1/ipam/v6/pool/fd80:24e2:f998:72d6::-64"
IPV6_POOL = {"cidr": "fd80:24e2:f998:72d6::/64", "ipip": "", "ipip_mode": "", "masquerade": False, "ipam": True,
             "disabled": False}
# startup.go ensureDefaultConfig: cluster keys, and per host DefaultEndpointToHostAction=RETURN;
# CalicoVersion is rewritten on every start; InterfacePrefix is never written (felix's default).
CLUSTER_KEYS = {"/calico/v1/Ready": "true", "/calico/v1/config/CalicoVersion": "v2.6.1",
                "/calico/v1/config/ReportingIntervalSecs": "0", "/calico/v1/config/LogSeverityScreen": "info"}
HOST_CONFIG = {"DefaultEndpointToHostAction": "RETURN"}
NEVER_WRITTEN = ("/calico/v1/config/InterfacePrefix",)
# calico/node's runit services (calico_node/filesystem/etc/service/available) and their svlogd files.
CALICO_SERVICES = ("felix", "bird", "bird6", "confd", "libnetwork")
CALICO_LOG_DIR = "/var/log/calico"
# Process names as `ps` shows them (comm, at most 15 characters); BIRD runs with -R.
CALICO_PROCESSES = ("calico-felix", "bird", "bird6")


def profile(network: str) -> dict[str, object]:
    """libnetwork-plugin v1.1.0 (driver CreateEndpoint): the profile named after the network,
    allowing ingress only from its own tag, egress to anywhere."""
    return {"rules": {"inbound_rules": [{"action": "allow", "src_tag": network}],
                      "outbound_rules": [{"action": "allow"}]},
            "tags": [network], "labels": {}}


# Calico 2.6's policy model (felix 2.6.0 rules/, default profiles as above), from first
# principles: a workload accepts traffic from workloads of its own network only; its own host
# may reach it (felix does not police host -> local workload); other hosts may not (no tag);
# workloads reach any host, and leave the pool NATed to their host's address (masquerade).
def allowed(src: tuple[str, str, str | None], dst: tuple[str, str, str | None]) -> bool:
    """(kind, node, network) of source and destination, kind 'workload' or 'host'."""
    (skind, snode, snet), (dkind, dnode, dnet) = src, dst
    if dkind == "host":
        return True
    if skind == "host":
        return snode == dnode
    return snet == dnet

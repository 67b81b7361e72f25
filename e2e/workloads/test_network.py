"""Guide section 7: a Calico Docker network shared by both nodes, a busybox workload on each,
pinging each other across two routed hops (ttl=62), with the routes the guide shows.

These tests create a network and workloads, so they share one set of objects and run
together on one xdist worker (group "network"); everything is removed afterwards.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pytest

from calicolab.core.polling import Timeout, wait_for
from calicolab.diagnose import diagnoses
from calicolab.stack import parsers
from e2e import expect

pytestmark = [pytest.mark.creates]

NETWORK = "net1"
POOL = ipaddress.ip_network("192.168.0.0/16")
MAC = "ee:ee:ee:ee:ee:ee"
GATEWAY = "169.254.1.1"
ROUTE_DEADLINE = 30


@dataclass(frozen=True)
class Workload:
    name: str
    node: object
    ip: str

    @property
    def block(self) -> str:
        return str(ipaddress.ip_network(f"{self.ip}/26", strict=False))


def _cleanup(first, second) -> None:
    second.run("docker rm -f workload-B >/dev/null 2>&1")
    first.run("docker rm -f workload-A >/dev/null 2>&1")
    first.run(f"docker network rm {NETWORK} >/dev/null 2>&1")


def _start(node, name: str) -> Workload:
    res = node.run(f"docker run --net {NETWORK} --name {name} -tid busybox", timeout=120)
    expect.command_ok(res, 'Docker cannot use the calico drivers (`plugin "calico" not found`?) '
                           "or the network is missing on this node (no cluster store)")
    addr = parsers.ip_addr(node.run(f"docker exec {name} ip addr").stdout)
    ips = addr.get("cali0").ipv4 if "cali0" in addr else ()
    expect.true(f"{name} on {node.name}: cali0 has an IPv4 address", bool(ips), "one /32 address",
                sorted(addr), "the calico driver's Join did not hand Docker the cali veth")
    return Workload(name, node, ips[0].split("/")[0])


@pytest.fixture(scope="module")
def workloads(nodes, cluster):
    first, second = nodes[cluster.nodes[0].name], nodes[cluster.nodes[1].name]
    _cleanup(first, second)  # leftovers of an interrupted earlier run
    res = first.run(f"docker network create --driver calico --ipam-driver calico-ipam {NETWORK}")
    expect.command_ok(res, "Docker cannot reach the calico/calico-ipam plugins or its cluster store")
    try:
        yield {"A": _start(first, "workload-A"), "B": _start(second, "workload-B")}
    finally:
        _cleanup(first, second)


def test_net1_is_visible_with_the_same_id_on_every_node(workloads, nodes):
    ids = {name: n.run(f"docker network inspect {NETWORK} --format '{{{{.Id}}}} {{{{.Scope}}}}'").stdout.strip()
           for name, n in nodes.items()}
    expect.equal(f"{NETWORK} id and scope on every node", len(set(ids.values())), 1,
                 "Docker has no cluster store on one node, so the network stays local" + f" (seen: {ids})")
    expect.true(f"{NETWORK} scope", next(iter(ids.values())).endswith(" global"), "global",
                next(iter(ids.values())), "the calico driver did not declare global scope")


@pytest.mark.parametrize("which", ["A", "B"])
def test_workload_has_cali0_with_a_32_from_the_pool_and_calico_mac(workloads, which):
    w = workloads[which]
    iface = parsers.ip_addr(w.node.run(f"docker exec {w.name} ip addr").stdout)["cali0"]
    expect.equal(f"{w.name}: cali0 MAC", iface.mac, MAC, "the driver did not set Calico's fixed MAC")
    expect.true(f"{w.name}: cali0 address is a /32", iface.ipv4[0].endswith("/32"), "a /32",
                iface.ipv4, "IPAM did not hand out a host address")
    expect.true(f"{w.name}: address in the pool {POOL}", ipaddress.ip_address(w.ip) in POOL,
                str(POOL), w.ip, "IPAM used another pool")


@pytest.mark.parametrize("which", ["A", "B"])
def test_workload_default_route_is_via_169_254_1_1(workloads, which):
    w = workloads[which]
    routes = parsers.ip_routes(w.node.run(f"docker exec {w.name} ip route").stdout)
    default = next((r for r in routes if r.dest == "default"), None)
    expect.true(f"{w.name}: default route", bool(default and default.via == GATEWAY and default.dev == "cali0"),
                f"default via {GATEWAY} dev cali0", default, "the driver's Join gave another gateway")


def _routes(node) -> list[parsers.Route]:
    return parsers.ip_routes(node.run("ip -4 route").stdout)


@pytest.mark.parametrize("local,remote", [("A", "B"), ("B", "A")], ids=["node1", "node2"])
def test_node_routes_match_the_guide(workloads, cluster, local, remote):
    here, there = workloads[local], workloads[remote]
    peer_ip = cluster.node(there.node.name).ip

    def shape(routes: list[parsers.Route]) -> dict[str, bool]:
        return {
            f"{there.block} via {peer_ip} (proto bird)": any(
                r.dest == there.block and r.via == peer_ip and r.proto == "bird" for r in routes),
            f"{here.ip} dev cali* (local workload /32)": any(
                r.dest == here.ip and (r.dev or "").startswith("cali") for r in routes),
            f"blackhole {here.block} (own block)": any(
                r.dest == here.block and r.kind == "blackhole" for r in routes),
        }

    try:
        wait_for(lambda: shape(_routes(here.node)), lambda s: all(s.values()),
                 f"{here.node.name}: routes", timeout=ROUTE_DEADLINE)
    except Timeout as err:
        missing = [k for k, ok in (err.last if isinstance(err.last, dict) else {}).items() if not ok]
        expect.fail(f"{here.node.name}: routes after {ROUTE_DEADLINE} s", "all of the guide's routes",
                    f"missing: {missing}", diagnoses.BGP_PORT_BLOCKED.text() + " (no BGP routes learnt)")


@pytest.mark.parametrize("src,dst", [("A", "B"), ("B", "A")], ids=["A-to-B", "B-to-A"])
def test_workloads_ping_each_other_with_ttl_62(workloads, src, dst):
    a, b = workloads[src], workloads[dst]

    def ping() -> str:
        return a.node.run(f"docker exec {a.name} ping -c 1 -W 2 {b.ip}", timeout=20).stdout

    try:
        out = wait_for(ping, lambda text: bool(parsers.ping_ttls(text)),
                       f"{a.name} -> {b.name} ping", timeout=ROUTE_DEADLINE)
    except Timeout as err:
        expect.fail(f"{a.name} ({a.node.name}) pings {b.name} {b.ip} ({b.node.name})", "a reply with ttl=62",
                    str(err.last)[-200:], "no route between the blocks (BGP not Established) or "
                    "FORWARD drops cali traffic")
    expect.equal(f"{a.name} -> {b.name}: reply ttl", parsers.ping_ttls(out), [62],
                 "not two routed hops: the packets are bridged or NATed instead of routed by the hosts")

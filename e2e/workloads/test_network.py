"""Guide section 7: a Calico Docker network shared by both nodes, a busybox workload on each,
pinging each other across two routed hops (ttl=62), with the routes the guide shows.

These tests create a network and workloads, so they share one set of objects and run
together on one xdist worker (group "network"); everything is removed afterwards.
"""

from __future__ import annotations

import ipaddress

import pytest

from calicolab.core.polling import Timeout, wait_for
from calicolab.diagnose import diagnoses
from calicolab.stack import parsers, workloads
from calicolab.stack.workloads import WorkloadFailed
from e2e import expect, guide

pytestmark = [pytest.mark.creates]

NETWORK = guide.NETWORK
ROUTE_DEADLINE = 30
NAMES = {"A": "workload-A", "B": "workload-B"}


@pytest.fixture(scope="module")
def workloads_ab(nodes, cluster):
    first, second = nodes[cluster.nodes[0].name], nodes[cluster.nodes[1].name]
    ordered = [first, second]
    workloads.remove(ordered, NAMES.values(), NETWORK)  # leftovers of an interrupted earlier run
    try:
        try:
            workloads.create_network(first, NETWORK)
            made = {"A": workloads.start(first, NAMES["A"], NETWORK), "B": workloads.start(second, NAMES["B"], NETWORK)}
        except WorkloadFailed as err:
            expect.fail(err.what, "created", err.result.describe(),
                        'Docker cannot use the calico drivers (`plugin "calico" not found`?), reach its cluster '
                        "store, or the network is missing on this node (no cluster store)")
        yield made
    finally:
        workloads.remove(ordered, NAMES.values(), NETWORK)


def test_net1_is_visible_with_the_same_id_on_every_node(workloads_ab, nodes):
    ids = {name: n.run(f"docker network inspect {NETWORK} --format '{{{{.Id}}}} {{{{.Scope}}}}'").stdout.strip()
           for name, n in nodes.items()}
    expect.equal(f"{NETWORK} id and scope on every node", len(set(ids.values())), 1,
                 "Docker has no cluster store on one node, so the network stays local" + f" (seen: {ids})")
    expect.true(f"{NETWORK} scope", next(iter(ids.values())).endswith(" global"), "global",
                next(iter(ids.values())), "the calico driver did not declare global scope")


@pytest.mark.parametrize("which", ["A", "B"])
def test_workload_has_cali0_with_a_32_from_the_pool_and_calico_mac(workloads_ab, which):
    w = workloads_ab[which]
    iface = workloads.interfaces(w.node, w.name)["cali0"]
    expect.equal(f"{w.name}: cali0 MAC", iface.mac, guide.WORKLOAD_MAC, "the driver did not set Calico's fixed MAC")
    expect.equal(f"{w.name}: cali0 addresses", list(iface.ipv4), [f"{w.ip}/{guide.WORKLOAD_PREFIXLEN}"],
                 "IPAM did not hand out one host address")
    expect.true(f"{w.name}: address in the pool {guide.POOL}", ipaddress.ip_address(w.ip) in guide.POOL,
                str(guide.POOL), w.ip, "IPAM used another pool")


@pytest.mark.parametrize("which", ["A", "B"])
def test_workload_default_route_is_via_169_254_1_1(workloads_ab, which):
    w = workloads_ab[which]
    routes = parsers.ip_routes(w.node.run(f"docker exec {w.name} ip route").stdout)
    default = next((r for r in routes if r.dest == "default"), None)
    good = bool(default and default.via == guide.WORKLOAD_GATEWAY and default.dev == "cali0")
    expect.true(f"{w.name}: default route", good,
                f"default via {guide.WORKLOAD_GATEWAY} dev cali0", default, "the driver's Join gave another gateway")


def _routes(node) -> list[parsers.Route]:
    return parsers.ip_routes(node.run("ip -4 route").stdout)


@pytest.mark.parametrize("local,remote", [("A", "B"), ("B", "A")], ids=["node1", "node2"])
def test_node_routes_match_the_guide(workloads_ab, cluster, local, remote):
    here, there = workloads_ab[local], workloads_ab[remote]
    peer_ip = cluster.node(there.node.name).ip

    def shape(routes: list[parsers.Route]) -> dict[str, bool]:
        return {
            f"{guide.block_of(there.ip)} via {peer_ip} (proto bird)": any(
                r.dest == guide.block_of(there.ip) and r.via == peer_ip and r.proto == "bird" for r in routes),
            f"{here.ip} dev cali* (local workload /32)": any(
                r.dest == here.ip and (r.dev or "").startswith("cali") for r in routes),
            f"blackhole {guide.block_of(here.ip)} (own block)": any(
                r.dest == guide.block_of(here.ip) and r.kind == "blackhole" for r in routes),
        }

    try:
        wait_for(lambda: shape(_routes(here.node)), lambda s: all(s.values()),
                 f"{here.node.name}: routes", timeout=ROUTE_DEADLINE)
    except Timeout as err:
        missing = [k for k, ok in (err.last if isinstance(err.last, dict) else {}).items() if not ok]
        expect.fail(f"{here.node.name}: routes after {ROUTE_DEADLINE} s", "all of the guide's routes",
                    f"missing: {missing}", diagnoses.BGP_PORT_BLOCKED.text() + " (no BGP routes learnt)")


@pytest.mark.parametrize("src,dst", [("A", "B"), ("B", "A")], ids=["A-to-B", "B-to-A"])
def test_workloads_ping_each_other_with_ttl_62(workloads_ab, src, dst):
    a, b = workloads_ab[src], workloads_ab[dst]
    try:
        reply = workloads.ping_until(a, b, ROUTE_DEADLINE)
    except Timeout as err:
        expect.fail(f"{a.name} ({a.node.name}) pings {b.name} {b.ip} ({b.node.name})", f"a reply with ttl={guide.TTL}",
                    str(getattr(err.last, "output", err.last))[-200:], "no route between the blocks (BGP not "
                    "Established) or FORWARD drops cali traffic")
    expect.equal(f"{a.name} -> {b.name}: reply ttl", list(reply.ttls), [guide.TTL],
                 "not two routed hops: the packets are bridged or NATed instead of routed by the hosts")

"""Guide section 7: a Calico Docker network shared by both nodes, a busybox workload on each,
pinging each other across two routed hops (ttl=62), with the routes the guide shows.

These tests create a network and workloads, so they share one set of objects and run
together on one xdist worker (group "network"); everything is removed afterwards.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from calicolab.core.polling import Timeout, wait_for
from calicolab.core.tables import render
from calicolab.diagnose import diagnoses
from calicolab.stack import etcd_query, nat_target, parsers, reachability, workloads
from calicolab.stack.workloads import WorkloadFailed
from e2e import expect, guide

pytestmark = [pytest.mark.creates]

NETWORK = guide.NETWORK
ROUTE_DEADLINE = 30
NAMES = {"A": "workload-A", "B": "workload-B"}
# Not in the guide: a second Calico network, to show that profiles isolate networks.
OTHER_NETWORK, OTHER_NAME = "net2", "workload-C"
POLICY_DEADLINE = 30


def _next_address(node, etcd_ip: str, address: str) -> str:
    """The address Calico 2.6.1's IPAM hands out next in this address's /26 block, from first
    principles of libcalico-go's blocks: ordinal 0 in a block not yet claimed, else the head of
    the block's `unallocated` list (released ordinals go to its tail)."""
    block = ipaddress.ip_network(guide.block_of(address))
    key = f"/calico/ipam/v2/assignment/ipv4/block/{block.network_address}-{block.prefixlen}"
    text = etcd_query.v2_get(node, etcd_ip, key)
    if text is None:
        return str(block.network_address)
    free = json.loads(text).get("unallocated") or []
    return str(block.network_address + free[0]) if free else "none (block full)"


@pytest.fixture(scope="module")
def expected_addresses(nodes, cluster) -> dict[str, str]:
    """Read before the workloads exist: on a fresh cluster these are the guide's addresses."""
    first = nodes[cluster.nodes[0].name]
    return {name: _next_address(first, cluster.nodes[0].ip, ip) for name, ip in guide.WORKLOAD_ADDRESSES.items()}


@pytest.fixture(scope="module")
def workloads_ab(nodes, cluster, expected_addresses):
    first, second = nodes[cluster.nodes[0].name], nodes[cluster.nodes[1].name]
    ordered = [first, second]
    workloads.remove(ordered, NAMES.values(), NETWORK)  # leftovers of an interrupted earlier run
    try:
        try:
            workloads.create_network(first, NETWORK)
            made = dict(zip("AB", workloads.start_each(ordered, [NAMES["A"], NAMES["B"]], NETWORK), strict=True))
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
def test_workload_gets_the_guides_address(workloads_ab, expected_addresses, which):
    w = workloads_ab[which]
    want = expected_addresses[w.name]
    fresh = " (the guide's: a fresh block)" if want == guide.WORKLOAD_ADDRESSES[w.name] else (
        f" (the guide's block {guide.block_of(guide.WORKLOAD_ADDRESSES[w.name])} was used before; "
        "the guide's run got its first address)")
    print(f"{w.name}: {w.ip}, expected {want}{fresh}")
    expect.equal(f"{w.name} on {w.node.name}: address{fresh}", w.ip, want,
                 "IPAM chose another block or ordinal: Calico 2.6.1 seeds its block choice with the FNV-1 "
                 "hash of the host name (libcalico-go randomBlockGenerator) and hands out a block's "
                 "`unallocated` ordinals in order, so a host not named node1/node2 gives other addresses")


def _endpoint(node, spec_ip: str, host: str, name: str) -> tuple[str, dict] | None:
    """This workload's endpoint key and value (keyed by libnetwork's host name and Docker's endpoint id)."""
    endpoint_id = node.run(f"docker inspect -f '{{{{.NetworkSettings.Networks.{NETWORK}.EndpointID}}}}' {name}"
                           ).stdout.strip()
    key = f"/calico/v1/host/{host}/workload/libnetwork/libnetwork/endpoint/{endpoint_id}"
    text = etcd_query.v2_get(node, spec_ip, key)
    return (key, json.loads(text)) if text else None


@pytest.mark.parametrize("which", ["A", "B"])
def test_endpoint_and_profile_are_named_after_the_network(workloads_ab, cluster, which):
    w = workloads_ab[which]
    ip = cluster.node(w.node.name).ip
    host = w.node.run("hostname").stdout.strip()
    found = _endpoint(w.node, ip, host, w.name)
    expect.true(f"{w.name}: endpoint key under /calico/v1/host/{host}/workload/libnetwork/libnetwork/endpoint/",
                found is not None, "present", "absent", "the plugin keys endpoints by HOSTNAME and Docker's "
                "endpoint id (libnetwork-plugin v1.1.0)")
    key, value = found
    iface = "cali" + key.rsplit("/", 1)[1][:11]
    want = {"state": "active", "name": iface, "mac": guide.WORKLOAD_MAC, "profile_ids": [NETWORK],
            "ipv4_nets": [f"{w.ip}/32"], "ipv6_nets": []}
    expect.equal(key, value, want, "libnetwork-plugin v1.1.0's endpoint value (profile = network name)")
    for part, want_part in guide.profile(NETWORK).items():
        text = etcd_query.v2_get(w.node, ip, f"/calico/v1/policy/profile/{NETWORK}/{part}")
        expect.equal(f"/calico/v1/policy/profile/{NETWORK}/{part}", json.loads(text) if text else None, want_part,
                     "the profile is not the one libnetwork-plugin creates for a network")


@pytest.mark.parametrize("which", ["A", "B"])
def test_felix_programs_the_workloads_host_side(workloads_ab, cluster, which):
    w = workloads_ab[which]
    host = w.node.run("hostname").stdout.strip()
    key, _ = _endpoint(w.node, cluster.node(w.node.name).ip, host, w.name) or ("", {})
    iface = "cali" + key.rsplit("/", 1)[-1][:11]
    neigh = w.node.run(f"ip neigh show dev {iface}").stdout
    expect.true(f"{w.node.name}: neighbour entry on {iface}",
                f"{w.ip} lladdr {guide.WORKLOAD_MAC} PERMANENT" in neigh,
                f"{w.ip} lladdr {guide.WORKLOAD_MAC} PERMANENT", neigh.strip() or "none",
                "felix did not program the workload's static ARP entry (felix down?)")
    for setting, want in (("proxy_arp", "1"), ("rp_filter", "1"), ("route_localnet", "1")):
        seen = w.node.run(f"cat /proc/sys/net/ipv4/conf/{iface}/{setting}").stdout.strip()
        expect.equal(f"{w.node.name}: {iface} {setting}", seen, want, "felix sets it on every workload interface")
    chains = w.node.run("iptables-save -t filter").stdout
    for chain in (f"cali-tw-{iface}", f"cali-fw-{iface}", f"cali-pri-{NETWORK}", f"cali-pro-{NETWORK}"):
        expect.true(f"{w.node.name}: chain {chain}", f":{chain} " in chains, "present", "absent",
                    "felix has not programmed the endpoint's or the profile's chains")


@pytest.fixture(scope="module")
def isolated(workloads_ab, nodes, cluster):
    """workload-C on the second node, on a second Calico network; every workload serves HTTP."""
    second = nodes[cluster.nodes[1].name]
    workloads.remove([second], [OTHER_NAME], OTHER_NETWORK)
    try:
        try:
            workloads.create_network(second, OTHER_NETWORK)
            other = workloads.start(second, OTHER_NAME, OTHER_NETWORK)
            workloads.serve_http([*workloads_ab.values(), other])
        except WorkloadFailed as err:
            expect.fail(err.what, "created", err.result.describe(), "the calico drivers refused a second network")
        yield {**workloads_ab, "C": other}
    finally:
        workloads.remove([second], [OTHER_NAME], OTHER_NETWORK)


def _members(isolated, cluster, nodes):
    """label -> (kind, node, network, ip, node object, workload name or None)."""
    found = {}
    for w in isolated.values():
        net = OTHER_NETWORK if w.name == OTHER_NAME else NETWORK
        found[w.name] = ("workload", w.node.name, net, w.ip, w.node, w.name)
    for spec in cluster.nodes:
        found[f"host {spec.name}"] = ("host", spec.name, None, spec.ip, nodes[spec.name], None)
    return found


def _matrix(members, proto: str):
    """One concurrent round: (pair -> answered, source -> its self-control answered)."""
    sources = {label: reachability.Source(m[4], m[5], m[3]) for label, m in members.items()}
    # Hosts serve no HTTP: tcp goes to workloads only.
    targets = {src: {dst: m[3] for dst, m in members.items() if dst != src and (proto == "icmp" or m[0] == "workload")}
               for src in members}
    return reachability.round_of(sources, targets, proto)


def _show(members, expected, seen, proto: str) -> str:
    labels = list(members)
    rows = []
    for src in labels:
        cells = []
        for dst in labels:
            if (src, dst) not in seen:
                cells.append("-")
                continue
            word, want = ("allow" if seen[(src, dst)] else "deny"), ("allow" if expected[(src, dst)] else "deny")
            cells.append(word if word == want else f"{word} (want {want})")
        rows.append([src, *cells])
    return f"{proto} reachability (rows: from, columns: to)\n" + render([f"{proto}: from \\ to", *labels], rows)


def _record(cluster, proto: str, expected, seen) -> None:
    """The matrix for the run page (calicolab/report/run_data.py: connectivity.json, a list of
    {step, rows}); one step per protocol, replaced when a later pass measures it again."""
    path = cluster.reports_path / "connectivity.json"
    step = f"section 7 workloads + {OTHER_NETWORK} ({proto})"
    try:
        steps = [s for s in json.loads(path.read_text()) if s.get("step") != step]
    except (OSError, ValueError, AttributeError):
        steps = []
    rows = [{"src": src, "dst": dst, "proto": proto, "expected": "ok" if expected[(src, dst)] else "blocked",
             "seen": "ok" if ok else "blocked"} for (src, dst), ok in sorted(seen.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([*steps, {"step": step, "rows": rows}], indent=2) + "\n")


@pytest.mark.parametrize("proto", workloads.PROTOCOLS)
def test_profiles_isolate_networks_matrix(isolated, cluster, nodes, proto):
    """Every pair probed in one concurrent round (one probe timeout, not one per source); a
    "deny" counts only when the same round shows its source answering and its destination
    reached by someone else (calicolab/stack/reachability.py), else the round is probed again."""
    members = _members(isolated, cluster, nodes)
    expected = {}
    for src, s in members.items():
        for dst, d in members.items():
            expected[(src, dst)] = guide.allowed((s[0], s[1], s[2]), (d[0], d[1], d[2]))

    def settled(got) -> bool:
        seen, controls = got
        return all(seen[k] for k in seen if expected[k]) and not reachability.unbacked(seen, controls)
    try:
        seen, controls = wait_for(lambda: _matrix(members, proto), settled, f"{proto}: a conclusive round",
                                  timeout=POLICY_DEADLINE, interval=0.5)
    except Timeout as err:
        seen, controls = err.last if isinstance(err.last, tuple) else _matrix(members, proto)
    table = _show(members, expected, seen, proto)
    print(table)
    _record(cluster, proto, expected, seen)
    wrong = [f"{s} -> {d}" for (s, d), ok in seen.items() if ok != expected[(s, d)]]
    expect.equal(f"{proto}: pairs whose reachability differs from Calico 2.6's profiles", wrong, [],
                 "felix does not enforce the profiles (a workload on another network or another host "
                 "got through), or an allowed path is broken (BGP routes, FORWARD, NAT):\n" + table)
    doubtful = reachability.unbacked(seen, controls)
    expect.equal(f"{proto}: denied pairs without a positive control in their round", doubtful, {},
                 "the node was too loaded to answer within the probe's timeout: a deny then proves nothing")


def _counted(node, where: str, specs: dict[str, str], send) -> dict[str, int]:
    """Packets matched by each counting rule (no target, tagged by its comment; `where` is
    "<table> <chain>") while `send` runs; the rules are removed afterwards."""
    table, chain = where.split()
    for spec in specs.values():
        node.run(f"iptables -w -t {table} -I {chain} {spec}", check=True)
    try:
        send()
        listing = node.run(f"iptables -w -t {table} -S {chain} -v").stdout
    finally:
        for spec in specs.values():
            node.run(f"iptables -w -t {table} -D {chain} {spec}")
    counts = {}
    for label, spec in specs.items():  # `-S -v` prints `-c <packets> <bytes>` on each rule
        tag = spec.split("--comment ", 1)[1]
        line = next((ln for ln in listing.splitlines() if tag in ln.split()), "")
        words = line.split()
        counts[label] = int(words[words.index("-c") + 1]) if "-c" in words else 0
    return counts


def _icmp_sources(far, sources: dict[str, str], dst: str, send) -> dict[str, int]:
    """Echo requests to `dst` counted by source on the far host (raw PREROUTING counting rules
    without a target), while `send` runs."""
    specs = {label: f"-p icmp -s {src} -d {dst} -m comment --comment calicolab-nat-{label}"
             for label, src in sources.items()}
    return _counted(far, "raw PREROUTING", specs, send)


# Three echo requests, 0.2 s apart (ping's default 1 s spacing made this the pass's slowest check,
# 5 s): more than one so a single lost packet cannot hide the source; busybox's -i takes
# fractions (root in the workload).
THREE_ECHOES = "ping -c 3 -i 0.2 -W 2"


def test_workload_egress_is_natted_only_outside_the_pools(isolated, cluster, nodes):
    """felix 2.6's cali-nat-outgoing: MASQUERADE from a masquerade pool to destinations outside
    every pool. The guide's hosts (192.168.223.0/24) lie inside 192.168.0.0/16, so traffic to them
    keeps the workload's source; an address outside the pools that really leaves the node gets
    the source of the path out (`ip route get`). The target: an address of the other node that
    is not also this node's own (VirtualBox gives both NAT interfaces 10.0.2.15), else this
    node's default gateway (calicolab/stack/nat_target.py)."""
    a = isolated["A"]
    here, there = cluster.node(a.node.name), cluster.nodes[1]
    far = nodes[there.name]
    inside = _icmp_sources(far, {"workload": a.ip, "host": here.ip}, there.ip,
                           lambda: a.exec(f"{THREE_ECHOES} {there.ip}"))
    expect.true(f"{a.name} -> {there.name} {there.ip} (inside the pool): sources seen there",
                inside["workload"] > 0 and inside["host"] == 0, f"from {a.ip} (no NAT inside the pools)",
                inside, "felix masquerades traffic whose destination is in a pool (the all-pools set?)")
    target = nat_target.pick(a.node, far, [guide.POOL])
    print(f"NAT outgoing target: {target.address or 'none'} (counted on "
          f"{there.name if target.count_on == 'far' else a.node.name}; {target.describe()})")
    outside = target.address
    if outside is None:
        pytest.skip(f"no address outside {guide.POOL} to show NAT outgoing with: {target.describe()}")
    route = a.node.run(f"ip -4 route get {outside}").stdout.split()
    nat_src = route[route.index("src") + 1] if "src" in route else ""
    if not nat_src or route[:1] == ["local"]:
        pytest.skip(f"{a.node.name} has no route out to {outside}: {' '.join(route) or 'none'}")
    send = lambda: a.exec(f"{THREE_ECHOES} {outside}")  # noqa: E731
    if target.count_on == "far":
        seen = _icmp_sources(far, {"workload": a.ip, "host": nat_src}, outside, send)
        good = seen["host"] > 0 and seen["workload"] == 0
        where = f"{there.name} {outside}"
    else:
        # Counted before MASQUERADE: the flow's first packet is not bound yet ("workload" 1),
        # every later one is bound to the node's address.
        seen = _counted(a.node, "mangle POSTROUTING",
                        nat_target.conntrack_counting_rules(a.ip, outside, nat_src, "calicolab-nat"), send)
        good = seen["host"] > 0 and seen["workload"] <= 1
        where = f"{a.node.name}'s gateway {outside}"
    expect.true(f"{a.name} -> {where} (outside the pools): sources seen",
                good, f"from {nat_src} (MASQUERADE)", seen, "felix does no NAT outgoing for the masquerade pool")


def test_profile_survives_network_rm(isolated, cluster):
    c = isolated["C"]
    ip = cluster.node(c.node.name).ip
    workloads.remove([c.node], [OTHER_NAME], OTHER_NETWORK)
    for part in guide.profile(OTHER_NETWORK):
        key = f"/calico/v1/policy/profile/{OTHER_NETWORK}/{part}"
        expect.true(f"{key} after docker network rm {OTHER_NETWORK}",
                    etcd_query.v2_get(c.node, ip, key) is not None, "still there", "deleted",
                    "libnetwork-plugin v1.1.0 never deletes a profile (DeleteNetwork is a no-op)")


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

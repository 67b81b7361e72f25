"""Parsers read the guide's outputs by structure."""

import json
import os
import re
from pathlib import Path

import pytest

from calicolab.stack import parsers
from e2e import guide

MEMBERS_V2 = """\
afc1b952a7b88713: name=node1 peerURLs=http://192.168.223.131:2380 clientURLs=http://192.168.223.131:2379 isLeader=true
c2ea0b3f1b36ab04: name=node2 peerURLs=http://192.168.223.130:2380 clientURLs=http://192.168.223.130:2379 isLeader=false
"""


def test_member_list_v2():
    members = parsers.etcd_member_list_v2(MEMBERS_V2)
    assert [(m.name, m.is_leader) for m in members] == [("node1", True), ("node2", False)]
    assert members[0].client_urls == ("http://192.168.223.131:2379",)


def test_member_list_v2_unstarted_member():
    members = parsers.etcd_member_list_v2("8e9e05c52164694d[unstarted]: peerURLs=http://10.0.0.2:2380\n")
    assert members[0].started is False and members[0].name == ""


def test_member_list_v3_leader_from_endpoint_status():
    listed = '{"members":[{"ID":1,"name":"node1","peerURLs":["p1"],"clientURLs":["c1"]},' \
             '{"ID":2,"name":"node2","peerURLs":["p2"],"clientURLs":["c2"]}]}'
    status = '[{"Endpoint":"c1","Status":{"header":{"member_id":1},"leader":2}},' \
             '{"Endpoint":"c2","Status":{"header":{"member_id":2},"leader":2}}]'
    members = parsers.etcd_member_list_v3(listed, status)
    assert [(m.name, m.is_leader) for m in members] == [("node1", False), ("node2", True)]


def test_members_without_quorum_name_no_leader_and_do_not_crash():
    # Debian VM lane, both members cut off from each other: etcd 3.5's status JSON had no
    # "leader" (a zero field is left out), and the parser died with KeyError instead of the
    # check saying "no leader".
    listed = ('{"members":[{"ID":1,"name":"node1","peerURLs":["p1"],"clientURLs":["c1"]},'
              '{"ID":2,"name":"node2","peerURLs":["p2"],"clientURLs":["c2"]}]}')
    status = '[{"Endpoint":"c1","Status":{"header":{"member_id":1},"raftTerm":35}}]'
    members = parsers.etcd_member_list_v3(listed, status)
    assert [(m.name, m.is_leader) for m in members] == [("node1", False), ("node2", False)]


def test_cluster_health_degraded():
    text = ("member afc1b952a7b88713 is healthy: got healthy result from http://192.168.223.131:2379\n"
            "member c2ea0b3f1b36ab04 is unreachable: [http://192.168.223.130:2379] are all unreachable\n"
            "cluster is degraded\n")
    health = parsers.etcd_cluster_health_v2(text)
    assert health.verdict == "degraded"
    assert health.members == {"afc1b952a7b88713": True, "c2ea0b3f1b36ab04": False}


def test_docker_info_cluster_store():
    text = " Server Version: 20.10.24\n Cluster Store: etcd://192.168.223.131:2379\n Cluster Advertise:\n"
    assert parsers.docker_info_cluster_store(text) == "etcd://192.168.223.131:2379"
    assert parsers.docker_info_cluster_store(" Server Version: 20.10.24\n") is None


# `calicoctl node status` as calicoctl v1.6.1 prints it. "narrow" is what the real binary
# prints: its vendored olekukonko/tablewriter (0fd34425) wraps a cell over 30 characters on
# spaces, the other columns of the continuation lines left blank (the oracle below has the real
# outputs). "wide" is the same table without wrapping (what calico_double printed before issue
# 24; kept as a tolerant reading). header_wrapped.txt is a later tablewriter (multi-line
# headers, a2f2500) with a column width of 10.
FIXTURES = Path(__file__).parent / "fixtures" / "calicoctl_node_status"
MESH = "node-to-node mesh"
EST_130 = parsers.BgpPeer("192.168.223.130", MESH, "up", "09:31:18", "Established")
REFUSED_130 = parsers.BgpPeer("192.168.223.130", MESH, "start", "09:31:18", "Active Socket: Connection refused")
RESET_130 = parsers.BgpPeer("192.168.223.130", MESH, "start", "09:31:18", "Idle Socket: Connection reset by peer")
REFUSED_132 = parsers.BgpPeer("192.168.223.132", MESH, "start", "09:31:18", "Active Socket: Connection refused")
EST_132 = parsers.BgpPeer("192.168.223.132", MESH, "up", "09:31:20", "Established")


def node_status(name: str) -> parsers.CalicoNodeStatus:
    return parsers.calicoctl_node_status((FIXTURES / name).read_text())


# The old parser failed the narrow cases and header_wrapped.txt: each continuation line became a
# phantom peer with a blank address (refused/reset: 2 peers, two_peers: 3) and the INFO was cut at
# the wrap ("Active Socket: Connection"); with the wrapped header it read the header's second line
# as a peer and had no "PEER ADDRESS" column. The wide, established and no-table cases pass on both.
@pytest.mark.parametrize(("name", "peers"), [
    ("established.txt", (EST_130,)),
    ("refused_wide.txt", (REFUSED_130,)),
    ("refused_narrow.txt", (REFUSED_130,)),
    ("reset_wide.txt", (RESET_130,)),
    ("reset_narrow.txt", (RESET_130,)),
    ("two_peers_wide.txt", (EST_130, REFUSED_132)),
    ("two_peers_narrow.txt", (EST_130, REFUSED_132)),
    ("header_wrapped.txt", (EST_130, REFUSED_132)),
    ("ipv6_peers.txt", (EST_130,)),  # the IPv6 table (a wrapped peer of its own) is ignored
    ("bird_not_running.txt", ()),
])
def test_calicoctl_node_status_peers(name, peers):
    assert node_status(name) == parsers.CalicoNodeStatus(True, peers)


def test_calicoctl_node_status_not_running():
    assert node_status("not_running.txt") == parsers.CalicoNodeStatus(False, ())


def test_wrapped_row_between_row_rules():
    # SetRowLine(true) draws a rule under every row; a rule is never a row. Fails on the old
    # parser (a phantom blank-address peer for the wrapped INFO).
    text = ("Calico process is running.\nIPv4 BGP status\n"
            "+---+---+---+---+---+\n| PEER ADDRESS | PEER TYPE | STATE | SINCE | INFO |\n+---+---+---+---+---+\n"
            "| 192.168.223.132 | node-to-node mesh | start | 09:31:18 | Active Socket: Connection |\n"
            "|  |  |  |  | refused |\n+---+---+---+---+---+\n"
            "| 192.168.223.130 | node-to-node mesh | up | 09:31:18 | Established |\n+---+---+---+---+---+\n")
    assert parsers.calicoctl_node_status(text).ipv4_peers == (REFUSED_132, EST_130)


def test_columns_in_another_order_still_parse():
    text = ("Calico process is running.\nIPv4 BGP status\n| INFO | STATE | PEER ADDRESS | PEER TYPE | SINCE |\n"
            "| Established | up | 10.0.0.2 | node-to-node mesh | 10:00 |\n")
    peer = parsers.calicoctl_node_status(text).ipv4_peers[0]
    assert peer.address == "10.0.0.2" and peer.established


def peers_status(*peers: parsers.BgpPeer) -> parsers.CalicoNodeStatus:
    return parsers.CalicoNodeStatus(True, peers)


def test_mesh_established_when_every_expected_peer_is_up():
    assert parsers.mesh_problems(node_status("established.txt"), ["192.168.223.130"]) == []
    assert parsers.mesh_established(node_status("established.txt"), ["192.168.223.130"])
    assert parsers.mesh_problems(peers_status(EST_130, EST_132), ("192.168.223.132", "192.168.223.130")) == []


def test_mesh_problem_calico_not_running():
    status = node_status("not_running.txt")
    assert parsers.mesh_problems(status, ["192.168.223.130"]) == ["calico process is not running"]
    assert not parsers.mesh_established(status, ["192.168.223.130"])


def test_mesh_problem_missing_peer():
    assert parsers.mesh_problems(node_status("bird_not_running.txt"), ["192.168.223.130"]) == [
        "peer 192.168.223.130: missing from the IPv4 BGP table"]
    assert parsers.mesh_problems(peers_status(EST_130), ["192.168.223.130", "192.168.223.132"]) == [
        "peer 192.168.223.132: missing from the IPv4 BGP table"]


def test_mesh_problem_extra_peer():
    assert parsers.mesh_problems(peers_status(EST_130, EST_132), ["192.168.223.130"]) == [
        "unexpected peer 192.168.223.132: type 'node-to-node mesh', state 'up', info 'Established'"]


def test_mesh_problem_phantom_peer():
    # What the old parser made of refused_narrow.txt: the continuation line as a blank peer.
    phantom = parsers.BgpPeer("", "", "", "", "refused")
    assert parsers.mesh_problems(peers_status(EST_130, phantom), ["192.168.223.130"]) == [
        "unexpected peer (blank address): type '', state '', info 'refused'"]


def test_mesh_problem_repeated_peer():
    assert parsers.mesh_problems(peers_status(EST_130, EST_130), ["192.168.223.130"]) == [
        "peer 192.168.223.130: listed 2 times"]


def test_mesh_problem_peer_type_not_mesh():
    peer = parsers.BgpPeer("192.168.223.130", "global", "up", "09:31:18", "Established")
    assert parsers.mesh_problems(peers_status(peer), ["192.168.223.130"]) == [
        "peer 192.168.223.130: type 'global', not 'node-to-node mesh'"]


def test_mesh_problem_state_not_up_or_info_not_established():
    up_not_established = parsers.BgpPeer("192.168.223.130", MESH, "up", "09:31:18", "Connect")
    assert parsers.mesh_problems(peers_status(up_not_established), ["192.168.223.130"]) == [
        "peer 192.168.223.130: state 'up', info 'Connect', not up/Established"]
    established_not_up = parsers.BgpPeer("192.168.223.130", MESH, "start", "09:31:18", "Established")
    assert parsers.mesh_problems(peers_status(established_not_up), ["192.168.223.130"]) == [
        "peer 192.168.223.130: state 'start', info 'Established', not up/Established"]


def test_mesh_problems_of_a_wrapped_table_name_only_the_real_peer():
    # On the old parser this also listed the phantom continuation peer and a cut INFO.
    assert parsers.mesh_problems(node_status("two_peers_narrow.txt"), ["192.168.223.130", "192.168.223.132"]) == [
        "peer 192.168.223.132: state 'start', info 'Active Socket: Connection refused', not up/Established"]


# -- the oracle: calicoctl v1.6.1's real `node status` output (issue 24) -----------------------
# ../shared/oracles/calicoctl-node-status.json from the repo root (CALICOLAB_ORACLES overrides):
# per case the BIRD control-socket reply, the processes, and calicoctl's exact stdout. Every case
# is a test; a missing file fails them in one line, never a skip.
ORACLE_FILE = "calicoctl-node-status.json"


def _oracle_folder() -> Path:
    override = os.environ.get("CALICOLAB_ORACLES", "").strip()
    return Path(override) if override else Path(__file__).resolve().parents[2].parent / "shared" / "oracles"


def _oracle_params() -> list:
    path = _oracle_folder() / ORACLE_FILE
    try:
        cases = json.loads(path.read_text())["cases"]
    except (OSError, ValueError, KeyError) as exc:
        return [pytest.param(f"oracle file missing or unreadable: {path} ({exc})", id=f"{ORACLE_FILE}:unavailable")]
    return [pytest.param(case, id=case["name"]) for case in cases]


def _case(value) -> dict:
    if isinstance(value, str):
        pytest.fail(value, pytrace=False)
    return value


# status.go unmarshalBIRD, written here from the source (not from the parser under test): a BGP
# row's name is <Global|Node|Mesh>_<address with _ for . >, then proto, table, state, since, and
# the info is every later field joined by one space.
_PEER_NAME = re.compile(r"^(Global|Node|Mesh)_(.+)$")
_PEER_TYPES = {"Global": "global", "Mesh": "node-to-node mesh", "Node": "node specific"}


def _bird_peers(reply: list[str]) -> tuple[parsers.BgpPeer, ...]:
    peers = []
    for line in reply:
        if line.startswith("0000"):
            break
        if not (line.startswith("1002-") or line.startswith(" ")):
            continue
        fields = line[5:].split() if line.startswith("1002-") else line[1:].split()
        match = _PEER_NAME.match(fields[0]) if len(fields) >= 6 and fields[1] == "BGP" else None
        if match:
            peers.append(parsers.BgpPeer(match.group(2).replace("_", "."), _PEER_TYPES[match.group(1)],
                                         fields[3], fields[4], " ".join(fields[5:])))
    return tuple(peers)


@pytest.mark.parametrize("case", _oracle_params())
def test_calicoctl_node_status_reads_calicoctl_output(case):
    """Each row of the real table is one peer with its whole INFO, wrapped or not; no phantom
    row from a continuation line."""
    case = _case(case)
    running = "calico-felix" in case["processes"]
    expected = _bird_peers(case["bird_ctl_socket_reply_v4"]) if running else ()
    assert parsers.calicoctl_node_status(case["stdout"]) == parsers.CalicoNodeStatus(running, expected)


@pytest.mark.parametrize("case", _oracle_params())
def test_mesh_problems_on_calicoctl_output_name_only_real_peers(case):
    """What e2e, doctor and the upgrade gate conclude (parsers.mesh_problems over the mesh peers
    BIRD has): one sentence per peer not up/Established with its whole INFO, nothing else."""
    case = _case(case)
    status = parsers.calicoctl_node_status(case["stdout"])
    bird = _bird_peers(case["bird_ctl_socket_reply_v4"])
    mesh = [p for p in bird if p.peer_type == MESH]
    others = [p for p in bird if p.peer_type != MESH]
    problems = parsers.mesh_problems(status, [p.address for p in mesh])
    if "calico-felix" not in case["processes"]:
        assert problems == ["calico process is not running"]
        return
    expected = [f"peer {p.address}: state {p.state!r}, info {p.info!r}, not up/Established"
                for p in mesh if not (p.state == "up" and p.info.split()[:1] == ["Established"])]
    unexpected = [f"unexpected peer {p.address}: type {p.peer_type!r}, state {p.state!r}, info {p.info!r}"
                  for p in others]
    assert sorted(problems) == sorted(expected + unexpected)


@pytest.mark.parametrize("case", _oracle_params())
def test_e2e_literals_are_in_calicoctl_output(case):
    # e2e/calico/test_calico.py reads guide.CALICO_RUNNING and, where bird6 runs with no IPv6
    # peer, guide.NO_IPV6_PEERS in the text.
    case = _case(case)
    if "calico-felix" in case["processes"]:
        assert case["stdout"].startswith(guide.CALICO_RUNNING + "\n")
        if "bird6" in case["processes"]:
            assert f"\n{guide.NO_IPV6_PEERS}\n" in case["stdout"]


def test_ip_routes_kinds_and_attributes():
    routes = parsers.ip_routes(
        "blackhole 192.168.202.64/26 proto bird\n"
        "192.168.165.64/26 via 192.168.223.130 dev eth1 proto bird\n"
        "192.168.202.64 dev cali3f97e93fcdb scope link\n")
    assert routes[0].kind == "blackhole" and routes[0].dest == "192.168.202.64/26"
    assert (routes[1].via, routes[1].dev, routes[1].proto) == ("192.168.223.130", "eth1", "bird")
    assert routes[2].dev.startswith("cali") and routes[2].via is None


def test_ip_addr_busybox_format():
    text = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue qlen 1000\n"
            "    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
            "    inet 127.0.0.1/8 scope host lo\n"
            "3: cali0@if4: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500 qdisc noqueue qlen 1000\n"
            "    link/ether ee:ee:ee:ee:ee:ee brd ff:ff:ff:ff:ff:ff\n"
            "    inet 192.168.202.64/32 scope global cali0\n")
    ifaces = parsers.ip_addr(text)
    assert ifaces["cali0"].mac == "ee:ee:ee:ee:ee:ee"
    assert ifaces["cali0"].ipv4 == ("192.168.202.64/32",)


def test_ping_ttls():
    assert parsers.ping_ttls("64 bytes from 192.168.104.0: seq=0 ttl=62 time=0.2 ms\n") == [62]


# The peer's /var/log/calico/bird/current from kill -9 of node1's BIRD on (lab CI run,
# 2026-12-02): the first new session reached feed and was dropped, the second came up for good.
BIRD_AFTER_KILL_DROPPED = """\
2026-12-02_16:43:48.90092 bird: Mesh_192_168_223_131: State changed to start
2026-12-02_16:43:53.06244 bird: Mesh_192_168_223_131: State changed to feed
2026-12-02_16:43:53.06269 bird: Mesh_192_168_223_131: State changed to start
2026-12-02_16:43:57.12658 bird: Mesh_192_168_223_131: State changed to feed
2026-12-02_16:43:57.12682 bird: Mesh_192_168_223_131: State changed to up
"""


def test_a_session_dropped_as_it_came_up_is_found():
    from calicolab.stack.parsers import bird_sessions_dropped_at_once
    assert bird_sessions_dropped_at_once(BIRD_AFTER_KILL_DROPPED, "Mesh_192_168_223_131") == [
        "2026-12-02_16:43:53.06269"]
    assert bird_sessions_dropped_at_once(BIRD_AFTER_KILL_DROPPED, "Mesh_192_168_223_130") == []
    after_up = BIRD_AFTER_KILL_DROPPED.replace("06244 bird: Mesh_192_168_223_131: State changed to feed",
                                               "06244 bird: Mesh_192_168_223_131: State changed to up")
    assert bird_sessions_dropped_at_once(after_up, "Mesh_192_168_223_131") == ["2026-12-02_16:43:53.06269"]


def test_a_clean_reconnect_is_not_a_dropped_session():
    from calicolab.stack.parsers import bird_sessions_dropped_at_once
    clean = "\n".join([BIRD_AFTER_KILL_DROPPED.splitlines()[0], *BIRD_AFTER_KILL_DROPPED.splitlines()[3:],
                       "2026-12-02_16:44:14.10000 bird: Reconfiguration requested by SIGHUP"])
    assert bird_sessions_dropped_at_once(clean, "Mesh_192_168_223_131") == []


def test_every_session_dropped_as_it_came_up_is_named_with_its_protocol():
    from calicolab.stack.parsers import bird_sessions_dropped
    other = BIRD_AFTER_KILL_DROPPED.replace("Mesh_192_168_223_131", "Mesh_192_168_223_132")
    both = BIRD_AFTER_KILL_DROPPED + other
    assert bird_sessions_dropped(both) == [("Mesh_192_168_223_131", "2026-12-02_16:43:53.06269"),
                                           ("Mesh_192_168_223_132", "2026-12-02_16:43:53.06269")]
    # A session that was up for seconds and then went is a flap, not a session dropped as it came up.
    later = BIRD_AFTER_KILL_DROPPED.replace("16:43:53.06269 bird: Mesh_192_168_223_131: State changed to start",
                                            "16:43:55.06269 bird: Mesh_192_168_223_131: State changed to start")
    assert bird_sessions_dropped(later) == []
    assert bird_sessions_dropped("garbage bird: Mesh_a: State changed to feed\n"
                                 "garbage bird: Mesh_a: State changed to start\n") == []


# Both nodes' BIRD logs from the restore drill in a fresh-clone CI run (2026-12-03): both BIRDs
# started together; node1's first session dropped as it was fed, node2's next one while it
# waited (Established, graceful restart not done), then the third held: 10 s without the route.
RESTORE_NODE1 = """\
2026-12-03_08:00:57.44526 bird: Mesh_192_168_224_130: State changed to start
2026-12-03_08:01:00.76708 bird: Mesh_192_168_224_130: State changed to feed
2026-12-03_08:01:00.76714 bird: Mesh_192_168_224_130: State changed to start
2026-12-03_08:01:10.80519 bird: Mesh_192_168_224_130: State changed to feed
2026-12-03_08:01:10.80643 bird: Mesh_192_168_224_130: State changed to up
"""
RESTORE_NODE2 = """\
2026-12-03_08:00:57.62746 bird: Mesh_192_168_224_131: State changed to start
2026-12-03_08:01:05.67682 bird: Mesh_192_168_224_131: State changed to wait
2026-12-03_08:01:05.67700 bird: Mesh_192_168_224_131: State changed to start
2026-12-03_08:01:10.80554 bird: Mesh_192_168_224_131: State changed to wait
2026-12-03_08:01:10.84925 bird: Mesh_192_168_224_131: State changed to feed
2026-12-03_08:01:11.85115 bird: Mesh_192_168_224_131: State changed to up
"""


def test_a_session_dropped_while_it_waited_on_graceful_restart_counts_too():
    # BIRD's `wait` is a protocol up with nothing fed yet (nest/proto.c): Established, then lost.
    assert parsers.bird_sessions_dropped(RESTORE_NODE2) == [("Mesh_192_168_224_131", "2026-12-03_08:01:05.67700")]
    assert parsers.bird_sessions_dropped(RESTORE_NODE2.replace("to wait\n2026-12-03_08:01:05.67700",
                                                               "to connect\n2026-12-03_08:01:05.67700")) == []


def test_drops_across_nodes_are_counted_once_each():
    drops = parsers.bird_drops_across({"node1": RESTORE_NODE1, "node2": RESTORE_NODE2})
    assert drops == [("node1", "Mesh_192_168_224_130", "2026-12-03_08:01:00.76714"),
                     ("node2", "Mesh_192_168_224_131", "2026-12-03_08:01:05.67700")]
    # One drop logged by both ends within a second of each other is one drop.
    echo = RESTORE_NODE1.replace("Mesh_192_168_224_130", "Mesh_192_168_224_131").replace(
        "08:01:00.767", "08:01:05.677")
    assert len(parsers.bird_drops_across({"node1": echo, "node2": RESTORE_NODE2})) == 1
    assert parsers.bird_drops_across({"node1": "", "node2": ""}) == []

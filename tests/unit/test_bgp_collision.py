"""BGP sessions dropped after a BIRD restart, told from BIRD 1.6's own log lines: the recorded
collisions of both shapes are excused under the `... under bgp-collision` entries, a hold-timer
expiry or a drop with no reason is not, and the peer's own restart is no drop at all.

Expected values come from the recordings (tests/unit/fixtures/bird_collision, read by hand: the
state changes and the lines before them) and from BIRD 1.6's source: proto/bgp/bgp.c
bgp_handle_graceful_restart ("Neighbor graceful restart detected%s", " - already pending"),
bgp_incoming_connection ("Incoming connection from %I (port %d) accepted"), packets.c
bgp_msg_table ({ 6, 7, "Connection collision resolution" }, { 4, 0, "Hold timer expired" }) and
bgp_log_error (log(L_REMOTE "%s: %s: %s%s", p->p.name, msg, name, argbuf), msg "Received" or
"Error")."""

from __future__ import annotations

from pathlib import Path

import pytest

from calicolab.core.errors import UserError
from calicolab.measure import budgets
from calicolab.stack import parsers

FIXTURES = Path(__file__).parent / "fixtures" / "bird_collision"
N1, N2 = "Mesh_192_168_241_130", "Mesh_192_168_241_131"  # node1's protocol for node2, node2's for node1


def logs(tag: str) -> dict[str, str]:
    return {n: (FIXTURES / f"{tag}-{n}.log").read_text() for n in ("node1", "node2")}


# BIRD 1.6's hold-timer path, in its own words: bgp_hold_timeout -> bgp_error(conn, 4, 0):
# bgp_log_error "Error: Hold timer expired", bgp_conn_enter_close_state -> "BGP session closed",
# bgp_stop -> "State changed to stop"; the NOTIFICATION goes out, bgp_down -> "Down", then the
# protocol starts again. node2's session from C-05 (up at 16:02:18.85) expiring 240 s later.
HOLD_TIMER_NODE2 = """\
2026-12-04_16:06:18.86102 bird: Mesh_192_168_241_131: Error: Hold timer expired
2026-12-04_16:06:18.86110 bird: Mesh_192_168_241_131: BGP session closed
2026-12-04_16:06:18.86113 bird: Mesh_192_168_241_131: State changed to stop
2026-12-04_16:06:18.86131 bird: Mesh_192_168_241_131: Sending NOTIFICATION(code=4.0)
2026-12-04_16:06:18.86140 bird: Mesh_192_168_241_131: Down
2026-12-04_16:06:18.86142 bird: Mesh_192_168_241_131: State changed to down
2026-12-04_16:06:18.86144 bird: Mesh_192_168_241_131: Starting
2026-12-04_16:06:18.86146 bird: Mesh_192_168_241_131: State changed to start
2026-12-04_16:06:18.86148 bird: Mesh_192_168_241_131: Started
"""


def found() -> budgets.Budgets:
    return budgets.load(budgets.DEFAULT_FILE)[0]


def test_shape_b_is_a_collision_and_excused_where_the_old_reading_saw_nothing():
    # B-12, node1: wait, "Received: Connection collision resolution", BGP session closed, stop,
    # down, start. The timing-only reading counted wait -> start only: it saw no drop, so the
    # run was judged by the strict entry (a false failure).
    drops = parsers.bgp_drops(logs("B-12"))
    assert [(d.node, d.protocol, d.at, d.shape) for d in drops] == [
        ("node1", N1, "2026-12-04_15:57:52.42728", parsers.SHAPE_B)]
    assert drops[0].cause == "Received: Connection collision resolution"
    assert any(line.endswith("Received: Connection collision resolution") for line in drops[0].lines)
    assert drops[0].outage_s == pytest.approx(56.80312 - 52.42728, abs=1e-3)  # up again at 15:57:56.80312
    choice = budgets.choose(found(), "bird-kill", "", drops)
    assert (choice.entry, choice.times) == ("bird-kill under bgp-collision", 1)
    assert "1183be5" in choice.why and "bgp_rx_open" in choice.why
    assert parsers.bird_drops_across(logs("B-12")) == []  # the old reading of the same lines
    # The idle recording: the same shape on node2.
    assert [(d.node, d.shape) for d in parsers.bgp_drops(logs("A-12"))] == [("node2", parsers.SHAPE_B)]


def test_shape_a_is_a_collision_with_or_without_already_pending():
    # B-08, node1 (the restarted end, no graceful restart of its own pending): wait, "Neighbor
    # graceful restart detected", start, "BGP session closed", "Incoming connection ... accepted".
    drops = parsers.bgp_drops(logs("B-08"))
    assert [(d.node, d.protocol, d.at, d.shape) for d in drops] == [
        ("node1", N1, "2026-12-04_15:56:05.47456", parsers.SHAPE_A)]
    assert drops[0].cause.startswith("Neighbor graceful restart detected; Incoming connection from 192.168.241.130")
    assert budgets.choose(found(), "bird-kill", "", drops).entry == "bird-kill under bgp-collision"


def test_three_drops_on_one_kill_each_with_its_shape_and_the_other_end_shown_once():
    # B-03: node1 shape A at 53.61, node2 shape A "already pending" at 58.44 (node1 logged its end
    # as "Connection closed" + "Neighbor graceful restart detected" at 58.43: the same drop), then
    # node1 shape B at 54:03.69. The timing-only reading counted two and missed the shape B.
    drops = parsers.bgp_drops(logs("B-03"))
    assert [(d.node, d.at, d.shape) for d in drops] == [
        ("node1", "2026-12-04_15:53:53.61287", parsers.SHAPE_A),
        ("node2", "2026-12-04_15:53:58.44021", parsers.SHAPE_A),
        ("node1", "2026-12-04_15:54:03.68564", parsers.SHAPE_B)]
    assert "already pending" in drops[1].cause
    assert any("node1: " in e and e.endswith("Connection closed") for e in drops[1].echo)
    assert len(parsers.bird_drops_across(logs("B-03"))) == 2
    choice = budgets.choose(found(), "bird-kill", "", drops)
    assert (choice.entry, choice.times) == ("bird-kill under bgp-collision", 3)


def test_a_clean_graceful_restart_has_no_drop():
    # C-05 (`passive on`): node2 logs the kill itself (Connection closed, graceful restart
    # detected, start) on a session up before the log began: the peer's restart, no drop.
    assert parsers.bgp_drops(logs("C-05")) == []
    assert budgets.choose(found(), "bird-kill", "", []).entry == "bird-kill"


def test_a_hold_timer_expiry_is_never_excused():
    alone = logs("C-05")
    alone["node2"] += HOLD_TIMER_NODE2
    drops = parsers.bgp_drops(alone)
    assert [(d.node, d.protocol, d.shape, d.cause) for d in drops] == [
        ("node2", N2, parsers.OTHER, "Error: Hold timer expired")]
    assert drops[0].up_s == pytest.approx(6 * 60 + 18.86113 - (2 * 60 + 18.85213), abs=1e-3)
    choice = budgets.choose(found(), "bird-kill", "", drops)
    assert choice.entry == "bird-kill" and "Hold timer expired" in choice.why
    # With a collision in the same window the hold timer still keeps the strict entry. The
    # timing-only reading counted the collision alone and excused the whole window.
    both = logs("B-08")
    both["node2"] += HOLD_TIMER_NODE2
    drops = parsers.bgp_drops(both)
    assert [d.shape for d in drops] == [parsers.SHAPE_A, parsers.OTHER]
    assert budgets.choose(found(), "bird-kill", "", drops).entry == "bird-kill"
    assert len(parsers.bird_drops_across(both)) == 1


def test_a_drop_with_no_reason_logged_is_not_a_collision():
    # A CI log at info level (states only, 2026-12-02): feed, then start 0.25 ms later. Nothing
    # says why, so nothing excuses it.
    info = ("2026-12-02_16:43:53.06244 bird: Mesh_192_168_223_131: State changed to feed\n"
            "2026-12-02_16:43:53.06269 bird: Mesh_192_168_223_131: State changed to start\n")
    drops = parsers.bgp_drops({"node2": info, "node1": ""})
    assert [(d.shape, d.at) for d in drops] == [(parsers.OTHER, "2026-12-02_16:43:53.06269")]
    assert "debug" in drops[0].cause
    assert budgets.choose(found(), "bird-kill", "", drops).entry == "bird-kill"


def test_the_peer_closing_a_session_as_it_came_up_without_a_collision_is_a_drop():
    # B-03's node1 end of node2's shape A, without node2's log: nothing explains it.
    only = {"node1": logs("B-03")["node1"], "node2": ""}
    drops = parsers.bgp_drops(only)
    other = [d for d in drops if d.at == "2026-12-04_15:53:58.43310"]
    assert [(d.shape, d.cause.split(";")[0]) for d in other] == [(parsers.OTHER, "Connection closed")]


def test_the_old_entry_name_is_refused_with_the_new_one():
    with pytest.raises(UserError, match="now 'bird-kill under bgp-collision'"):
        budgets.parse({"bird-kill under recovery-session-lost": {"lost_packets": 1}}, "b.yaml")


def test_an_impairment_entry_wins_and_a_missing_collision_entry_keeps_the_strict_one():
    drops = parsers.bgp_drops(logs("B-12"))
    rules = {"calico-node-restart": {"lost_packets": 0},
             "calico-node-restart under loss:179": {"lost_packets": 1600}}
    assert budgets.choose(rules, "calico-node-restart", "loss:179", drops).entry == "calico-node-restart under loss:179"
    choice = budgets.choose(rules, "calico-node-restart", "", drops)
    assert choice.entry == "calico-node-restart" and "no `calico-node-restart under bgp-collision` entry" in choice.why


@pytest.mark.parametrize("tag,node,shape,pending,old", [
    ("L-q2", "node1", parsers.SHAPE_A, False, 1),
    ("L-q6", "node2", parsers.SHAPE_A, True, 1),
    ("L-q8", "node1", parsers.SHAPE_B, False, 0),  # the timing-only reading missed it: a false failure
])
def test_the_fault_tests_own_debug_recordings(tag, node, shape, pending, old):
    drops = parsers.bgp_drops(logs(tag))
    assert [(d.node, d.shape) for d in drops] == [(node, shape)]
    assert ("already pending" in drops[0].cause) == pending
    assert budgets.choose(found(), "bird-kill", "", drops).entry == "bird-kill under bgp-collision"
    assert len(parsers.bird_drops_across(logs(tag))) == old


def test_a_new_bird_process_is_no_drop_of_the_old_ones_session():
    # A rolling restart: node2's session came up after node1's restart, then node2's calico-node
    # was restarted (BIRD SIGKILLed: no line) and the new BIRD logs "Initializing", "Starting",
    # "State changed to start" (nest/proto.c). The old process's session did not drop: it died.
    log = ("2026-12-04_19:00:03.10000 bird: Mesh_192_168_239_131: State changed to feed\n"
           "2026-12-04_19:00:03.10010 bird: Mesh_192_168_239_131: State changed to up\n"
           "2026-12-04_19:00:13.02120 bird: Mesh_192_168_239_131: Initializing\n"
           "2026-12-04_19:00:13.02125 bird: Mesh_192_168_239_131: Starting\n"
           "2026-12-04_19:00:13.02131 bird: Mesh_192_168_239_131: State changed to start\n")
    assert parsers.bgp_drops({"node2": log}) == []

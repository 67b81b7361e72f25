"""The history checks beyond linearizability (lost acknowledged writes, local reads, watches),
the client's JSON lines read back (an invocation with no answer is indeterminate), and the
whole evaluation on an edited history: one read changed to a value overwritten earlier must
fail with the offending operations in the text."""

from __future__ import annotations

import json
import threading

from calicolab.etcd_history import etcd_client, operations, recording
from calicolab.etcd_history.operations import History, Op, WatchEvent

K = "/calicolab-history/t/v2/k0"


def w(i: int, f: str, t0: float, t1: float | None, index: int | None = None, value: str | None = None,
      outcome: str = "ok", succeeded: bool | None = None, process: str = "node1/v2", key: str = K) -> Op:
    return Op(id=str(i), process=process, api="v2", f=f, key=key, invoke=t0, complete=t1, value=value,
              outcome=outcome, succeeded=succeeded, index=index)


def final(index: int | None, read: str | None) -> Op:
    return Op(id="f", process="final/node1", api="v2", f="get", key=K, invoke=100, complete=101, outcome="ok",
              found=read is not None, read=read, index=index)


def test_parse_lines_pairs_invoke_and_end_and_leaves_the_unanswered_indeterminate():
    lines = [
        {"type": "invoke", "id": "a", "process": "p", "api": "v2", "f": "put", "key": K, "value": "x", "invoke": 1.0},
        {"type": "ok", "id": "a", "complete": 1.5, "index": 7, "prev": None},
        {"type": "invoke", "id": "b", "process": "p", "api": "v2", "f": "put", "key": K, "value": "y", "invoke": 2.0},
        {"type": "watch-start", "watcher": "node1/watch", "index": 7},
        {"type": "watch", "watcher": "node1/watch", "key": K, "action": "set", "index": 7, "value": "x", "at": 1.4},
    ]
    hist = operations.parse_lines(json.dumps(line) for line in lines)
    a, b = hist.ops
    assert (a.outcome, a.index, a.complete) == ("ok", 7, 1.5) and a.applied
    assert (b.outcome, b.complete) == ("info", None) and not b.applied
    assert hist.watch_from == {"node1/watch": 7} and hist.watches["node1/watch"][0].value == "x"


def test_acknowledged_write_lost_when_the_final_index_is_older():
    ops = [w(1, "put", 0, 1, 10, "a"), w(2, "put", 2, 3, 12, "b")]
    assert operations.lost_writes(ops, {K: final(12, "b")}) == []
    lost = operations.lost_writes(ops, {K: final(10, "a")})
    assert len(lost) == 1 and "'b'" in lost[0] and "final read found 'a' @10" in lost[0]


def test_absent_key_is_a_loss_unless_something_deleted_it():
    ops = [w(1, "put", 0, 1, 10, "a")]
    assert len(operations.lost_writes(ops, {K: final(None, None)})) == 1
    maybe_deleted = [*ops, w(2, "delete", 2, None, outcome="info")]
    assert operations.lost_writes(maybe_deleted, {K: final(None, None)}) == []


def test_local_reads_may_be_stale_but_not_invented_nor_go_back():
    put_a, put_b = w(1, "put", 0, 1, 10, "a"), w(2, "put", 2, 3, 11, "b")

    def local(i, t0, read, index, member):
        return Op(id=f"l{i}", process="node2/v2", api="v2", f="get_local", key=K, invoke=t0, complete=t0 + 0.1,
                  outcome="ok", found=True, read=read, index=index, member_index=member, endpoint="e2")

    assert operations.local_read_problems([put_a, put_b, local(1, 4, "a", 10, 20)]) == []  # stale: allowed
    assert len(operations.local_read_problems([put_a, local(1, 4, "zz", 10, 20)])) == 1  # never written
    assert len(operations.local_read_problems([put_a, local(1, 4, "a", 13, 20)])) == 1  # wrong index
    back = operations.local_read_problems([put_a, put_b, local(1, 4, "b", 11, 21), local(2, 5, "a", 10, 19)])
    assert len(back) == 1 and "went back" not in back[0] and "19 after 21" in back[0]


def _watched(events: list[tuple[int, str, str | None]], ops: list[Op]) -> History:
    return History(ops=ops, watch_from={"n1": 10},
                   watches={"n1": [WatchEvent("n1", K, action, index, value, 0.0) for index, action, value in events]})


def test_watch_sees_every_acknowledged_write_in_order():
    ops = [w(1, "put", 0, 1, 10, "a"), w(2, "put", 2, 3, 11, "b"), w(3, "delete", 4, 5, 12, succeeded=True)]
    assert operations.watch_problems(_watched([(10, "set", "a"), (11, "set", "b"), (12, "delete", None)], ops)) == []
    missed = operations.watch_problems(_watched([(10, "set", "a"), (12, "delete", None)], ops))
    assert len(missed) == 1 and "missed the acknowledged write @11" in missed[0]
    reordered = operations.watch_problems(_watched([(11, "set", "b"), (10, "set", "a"), (12, "delete", None)], ops))
    assert any("out of order" in p for p in reordered)
    short = operations.watch_problems(_watched([(10, "set", "a")], ops))
    assert any("stopped at @10 before the acknowledged write @11" in p for p in short)


def test_watch_event_nobody_asked_for_is_a_problem_but_an_indeterminate_write_is_not():
    ops = [w(1, "put", 0, 1, 10, "a"), w(2, "put", 2, None, value="b", outcome="info")]
    assert operations.watch_problems(_watched([(10, "set", "a"), (11, "set", "b")], ops)) == []
    invented = operations.watch_problems(_watched([(10, "set", "a"), (11, "set", "zz")], ops))
    assert len(invented) == 1 and "matches no write" in invented[0]


def test_an_edited_history_fails_the_evaluation_with_the_sub_history():
    """A clean two-client history passes; change one read to the value an acknowledged write had
    replaced, and the v2 verdict fails, naming that read."""
    ops = [w(1, "put", 0, 1, 10, "a"), w(2, "put", 2, 3, 11, "b", process="node2/v2"),
           Op(id="r", process="node1/v2", api="v2", f="get", key=K, invoke=4, complete=5, outcome="ok",
              found=True, read="b", index=11), final(11, "b")]
    clean = History(ops=ops)
    good = recording.evaluate(clean, recording.final_reads(clean))
    assert good.linearizable == {"v2": True} and good.problems == []
    ops[2].read, ops[2].index = "a", 10  # the edit: a stale read after b was acknowledged
    edited = History(ops=ops)
    bad = recording.evaluate(edited, recording.final_reads(edited))
    assert bad.linearizable == {"v2": False} and "etcd v2 history not linearizable" in bad.problems
    assert "NOT linearizable" in bad.failure_text and "found 'a' @10" in bad.failure_text


class QuietMember:
    """A member with no event left to send: every watch long-poll runs out its timeout, on a clock
    the test keeps (no real waiting)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.polls = 0

    def clock(self) -> float:
        return self.now

    def request(self, method, path, body=None, content_type="", timeout=2.0):  # noqa: ARG002 - Endpoint's
        self.polls += 1
        self.now += timeout
        raise etcd_client.Unknown("TimeoutError: timed out")


def test_a_drained_watcher_stops_after_one_quiet_poll(tmp_path, monkeypatch):
    # Draining: DRAIN_IDLE without an event means caught up. Counted from the poll's end, it
    # took two quiet polls: 3 s of every measured window's stop (stop_seconds 3.5-3.6).
    member = QuietMember()
    monkeypatch.setattr(etcd_client.time, "monotonic", member.clock)
    drain = threading.Event()
    drain.set()
    rec = etcd_client.Recorder(str(tmp_path / "w.jsonl"))
    etcd_client.watcher(member, rec, "node1/watch", "/calicolab-history", 7, drain)  # type: ignore[arg-type]
    rec.close()
    assert member.polls == 1
    assert member.now == etcd_client.DRAIN_IDLE

"""The reachability round: every source probed at once, and a deny kept only when a positive
control of the same round backs it, so that a node too loaded to answer in time can never read
as isolation (issue 26). The fake nodes answer from a table of which addresses answer whom."""

from __future__ import annotations

import re
import threading

from calicolab.core.remote import CommandResult
from calicolab.stack import reachability
from calicolab.stack.reachability import Source

PROBE = re.compile(r"(\d+\.\d+\.\d+\.\d+)[^&(]*>/dev/null 2>&1 && echo (.+?)=ok")


class Answering:
    """A node whose probes from `workload` reach the addresses in answers[workload]."""

    def __init__(self, name: str, answers: dict[str | None, set[str]], together: int = 1) -> None:
        self.name, self.answers = name, answers
        # Every call waits until `together` calls are in at once: probed one after another,
        # the first call would wait alone and the barrier break (no timing to get wrong).
        self.barrier = threading.Barrier(together, timeout=20)

    def run(self, cmd: str, *, check: bool = False, timeout: float = 60) -> CommandResult:
        self.barrier.wait()
        m = re.match(r"docker exec (\S+) ", cmd)
        who = m.group(1) if m else None
        lines = []
        for ip, label in PROBE.findall(cmd.replace("'\"'\"'", "'")):
            label = label.strip("'")
            lines.append(f"{label}={'ok' if ip in self.answers.get(who, set()) else 'no'}")
        return CommandResult(self.name, cmd, 0, "\n".join(lines) + "\n", "")


def test_every_source_is_probed_at_once_and_self_controls_come_back_apart():
    shared = Answering("both", {"wa": {"10.0.0.1", "10.0.0.2"}, "wb": {"10.0.0.2"}}, together=2)
    sources = {"A": Source(shared, "wa", "10.0.0.1"), "B": Source(shared, "wb", "10.0.0.2")}
    # The two sources' calls meet at the barrier; a sequential round breaks it (BrokenBarrierError).
    seen, controls = reachability.round_of(sources, {"A": {"B": "10.0.0.2"}, "B": {"A": "10.0.0.1"}}, "icmp")
    assert seen == {("A", "B"): True, ("B", "A"): False}
    assert controls == {"A": True, "B": True}


def test_a_deny_backed_by_both_controls_stands():
    seen = {("A", "B"): True, ("C", "A"): False, ("C", "host"): True, ("B", "A"): True}
    assert reachability.unbacked(seen) == {}


def test_a_source_that_reached_nothing_not_even_itself_makes_its_denies_inconclusive():
    seen = {("A", "B"): True, ("B", "A"): True, ("C", "A"): False, ("C", "B"): False}
    assert set(reachability.unbacked(seen, {"C": False})) == {("C", "A"), ("C", "B")}
    # The same round with C answering itself: the denies stand (C's probes ran in time).
    assert reachability.unbacked(seen, {"C": True}) == {}


def test_a_destination_nobody_reached_makes_its_denies_inconclusive():
    seen = {("A", "B"): True, ("A", "C"): False, ("B", "C"): False}
    why = reachability.unbacked(seen, {"A": True, "B": True})
    assert set(why) == {("A", "C"), ("B", "C")} and "no source reached C" in why[("A", "C")]

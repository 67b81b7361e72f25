"""The read-only pass's command log and its floor (issue 26): every node command recorded with
its test, the replay runs each node's commands back to back with both nodes at once, and the
commands of the tests that act are counted at their time in the pass, never run again."""

from __future__ import annotations

import threading
import time

from calicolab.core.remote import CommandResult
from calicolab.measure import command_log
from calicolab.measure.command_log import Call


class FakeNode:
    def __init__(self, name: str, seconds: float = 0.0) -> None:
        self.name, self.seconds, self.ran = name, seconds, []
        self.threads: set[int] = set()

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120) -> CommandResult:
        self.ran.append(cmd)
        self.threads.add(threading.get_ident())
        if self.seconds:
            time.sleep(self.seconds)
        return CommandResult(self.name, cmd, 0 if cmd != "false" else 1, "", "")


def test_every_command_is_recorded_with_its_node_test_and_exit(tmp_path):
    node = FakeNode("node1")
    tests = iter(["e2e/hosts/test_hosts.py::test_a (call)", "e2e/workloads/test_network.py::test_b (setup)"])
    recorder = command_log.Recorder(tmp_path, lambda: next(tests))
    recorder.wrap(node)
    assert node.run("true").ok and not node.run("false").ok
    calls = command_log.read(tmp_path)
    assert [(c.node, c.cmd, c.rc) for c in calls] == [("node1", "true", 0), ("node1", "false", 1)]
    assert [c.acting for c in calls] == [False, True]
    assert node.ran == ["true", "false"]


def test_the_floor_replays_reads_counts_acting_commands_and_takes_the_slower_node():
    calls = [Call("node1", "systemctl is-active etcd", "e2e/etcd/t.py::x (call)", 1.0, 0.5, 0),
             Call("node1", "docker run busybox", "e2e/workloads/test_network.py::y (setup)", 2.0, 3.0, 0),
             Call("node2", "ip route", "e2e/hosts/t.py::z (call)", 1.5, 0.7, 0),
             Call("node2", "ip addr", "e2e/hosts/t.py::z (call)", 1.6, 0.7, 0)]
    nodes = {"node1": FakeNode("node1", 0.05), "node2": FakeNode("node2", 0.05)}
    floors = {f.node: f for f in command_log.replay(calls, nodes)}
    # Replayed: the reads only, after one connecting `true`; the acting command is not run again.
    assert nodes["node1"].ran == ["true", "systemctl is-active etcd"]
    assert nodes["node2"].ran == ["true", "ip route", "ip addr"]
    assert floors["node1"].replayed == 1 and floors["node1"].acting_seconds == 3.0
    assert 0.05 <= floors["node1"].replay_seconds < 0.5  # measured now, not the pass's 0.5 s
    assert floors["node2"].pass_seconds == 1.4
    assert command_log.floor_seconds(list(floors.values())) == floors["node1"].seconds >= 3.05
    # Both nodes at once: each node's replay ran in a thread of its own.
    assert not nodes["node1"].threads & nodes["node2"].threads


def test_acting_commands_that_ran_at_once_count_once():
    # A concurrent matrix round: three 2 s probes from one node at the same moment, then a
    # docker run after them: 2 s + 1 s busy, not 7 s.
    calls = [Call("node1", f"docker exec w{i} ping", "e2e/workloads/t.py::m (call)", 10.0 + i * 0.01, 2.0, 0)
             for i in range(3)] + [Call("node1", "docker run", "e2e/workloads/t.py::n (call)", 13.0, 1.0, 0)]
    floor = command_log.replay(calls, {"node1": FakeNode("node1")})[0]
    assert abs(floor.acting_seconds - 3.02) < 1e-6
    assert command_log.busy([(0, 1), (0.5, 2), (3, 4), (3.5, 3.6)]) == 3.0

"""Read once, check many (calicolab/stack/snapshot.py): one round trip answers every declared
read exactly as the command alone answers it, the checks are served from it, and a node that
changed after the snapshot is caught by the re-read, so a stale snapshot cannot pass a check the
live command fails."""

from __future__ import annotations

import base64
import os
import subprocess

import pytest

from calicolab.core.remote import CommandResult, RemoteCommandFailed
from calicolab.stack import parsers, snapshot
from e2e import expect, state_reads
from e2e.calico.test_calico import test_calico_node_unit_is_active as calico_node_unit_is_active

# Exit codes, stderr, no trailing newline, quotes, a pipeline, and an output that forges the
# script's own frame: each must come back as the command alone gives it.
COMMANDS = ["echo hello", "printf 'a\\nb'; echo oops >&2; exit 3", "cat /nonexistent/file",
            f"echo '{snapshot.FRAME} 0 0'; echo second", "printf '%s' \"it's\" | tr a-z A-Z", "true",
            "head -c 3000 /dev/zero | tr '\\0' x"]


class ShellNode:
    """A node whose commands run in this machine's sh, as `sudo -n sh -c` runs them on a node."""

    name = "node1"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120) -> CommandResult:
        self.calls.append(cmd)
        res = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
        result = CommandResult(self.name, cmd, res.returncode, res.stdout, res.stderr)
        if check and not result.ok:
            raise RemoteCommandFailed(result)
        return result


def _alone(cmd: str) -> snapshot.Answer:
    res = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return snapshot.Answer(res.returncode, res.stdout, res.stderr)


def test_one_round_trip_answers_each_command_as_it_answers_alone():
    node = ShellNode()
    answers = snapshot.read(node, COMMANDS + ["echo hello"])  # a repeat is asked once
    assert len(node.calls) == 1
    assert answers == {cmd: _alone(cmd) for cmd in COMMANDS}
    assert answers["printf 'a\\nb'; echo oops >&2; exit 3"] == snapshot.Answer(3, "a\nb", "oops\n")


def test_only_a_stream_with_bytes_costs_an_encoder(tmp_path, monkeypatch):
    """Under TCG each process costs the node tens of ms: an empty stdout or stderr (most stderr)
    is framed without running base64 at all, and still reads back as empty."""
    calls = tmp_path / "calls"
    fake = tmp_path / "base64"
    real = subprocess.run(["sh", "-c", "command -v base64"], capture_output=True, text=True).stdout.strip()
    fake.write_text(f'#!/bin/sh\necho "$1" >> {calls}\nexec {real} "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    commands = ["true", "echo out", "echo err >&2; exit 2", "echo both; echo both >&2"]
    answers = snapshot.read(ShellNode(), commands)
    assert answers == {cmd: _alone(cmd) for cmd in commands}
    assert len(calls.read_text().splitlines()) == 4  # out, err, and both of the last: not the empty four


def test_a_read_past_its_limit_is_left_to_run_live_and_holds_up_nothing():
    # With etcd's quorum lost each calicoctl read hangs for its client's timeout (60 s measured),
    # and three in turn held the pass's start for 205 s before the limit.
    node = ShellNode()
    hung, stubborn = "sleep 30; echo late", "trap '' TERM; sleep 30"  # the second ignores TERM
    answers = snapshot.read(node, ["echo before", hung, stubborn, "echo after"], limit=0.5)
    assert answers == {"echo before": snapshot.Answer(0, "before\n", ""),
                       "echo after": snapshot.Answer(0, "after\n", "")}  # no "late": cut off
    served = snapshot.Served(node, answers, lambda: "e2e/x.py::check (call)")
    node.calls.clear()
    served.run("echo after")
    assert node.calls == []  # served
    assert served.run("echo late").stdout == "late\n" and node.calls == ["echo late"]  # not held: live


def _every_ask_answered(script: str, rc: int, out: str) -> str:
    """The snapshot script's output when each command it asks exits rc with stdout out."""
    asked = [line for line in script.splitlines() if line.startswith("ask ")]
    body = base64.b64encode(out.encode()).decode()
    return "".join(f"{snapshot.FRAME} {i} {rc}\n{body}\n\n" for i in range(len(asked)))


class StateNode:
    """A node whose calico-node unit is whatever `state` says, with every round trip counted."""

    name = "node1"

    def __init__(self, state: str) -> None:
        self.state = state
        self.round_trips = 0

    def _answer(self) -> tuple[int, str]:
        return (0 if self.state == "active" else 3), self.state + "\n"

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120) -> CommandResult:
        self.round_trips += 1
        rc, out = self._answer()
        if snapshot.FRAME in cmd:
            out, rc = _every_ask_answered(cmd, rc, out), 0
        return CommandResult(self.name, cmd, rc, out, "")


def test_a_stale_snapshot_cannot_pass_a_check_the_live_command_fails():
    node = StateNode("active")
    taken = snapshot.Snapshot(0.0, {"node1": snapshot.read(node, [state_reads.CALICO_NODE_ACTIVE])})
    node.state = "failed"  # calico-node fails after the snapshot, before its check runs

    # Live, the check fails ...
    with pytest.raises(expect.CheckFailed):
        calico_node_unit_is_active(StateNode("failed"))
    # ... served from the snapshot it passes: that is what staleness would do ...
    served = snapshot.Served(node, taken.answers["node1"], lambda: "e2e/calico/test_calico.py::unit (call)")
    trips = node.round_trips
    calico_node_unit_is_active(node)
    assert node.round_trips == trips  # answered from the snapshot
    # ... and the re-read after the pass names the change and the check: the pass fails.
    consumed = snapshot.load_consumed([])
    consumed["node1"] = served.consumed
    changes = snapshot.recheck({"node1": node}, taken, consumed)
    assert [(c.node, c.cmd, c.seen.stdout, c.live.stdout, c.tests) for c in changes] == [
        ("node1", state_reads.CALICO_NODE_ACTIVE, "active\n", "failed\n", ("e2e/calico/test_calico.py::unit (call)",))]
    assert "active" in changes[0].text() and "failed" in changes[0].text()

    # Unchanged, the re-read finds nothing: the check's verdict is the live one at the pass's end.
    node.state = "active"
    assert snapshot.recheck({"node1": node}, taken, consumed) == []


def test_served_once_per_test_then_live_and_never_to_a_test_that_acts():
    node = ShellNode()
    taken = snapshot.read(node, ["echo snap"])
    node.calls.clear()
    current = ["e2e/hosts/test_hosts.py::a (call)"]
    served = snapshot.Served(node, {"echo snap": snapshot.Answer(0, "from the snapshot\n", "")}, lambda: current[0],
                             live_only=lambda test: test.startswith("e2e/workloads/"))
    assert taken["echo snap"].stdout == "snap\n"
    assert node.run("echo snap").stdout == "from the snapshot\n"
    assert node.run("echo snap").stdout == "snap\n"  # asked again in one test: a poll, live
    current[0] = "e2e/hosts/test_hosts.py::b (call)"
    assert node.run("echo snap").stdout == "from the snapshot\n"  # another check: served
    current[0] = "e2e/workloads/test_network.py::c (call)"
    assert node.run("echo snap").stdout == "snap\n"  # a test that acts: live
    assert node.run("echo other").stdout == "other\n"  # not declared: live
    assert node.calls == ["echo snap", "echo snap", "echo other"]
    # a polled on (its verdict is the live answer's); b was decided by the snapshot's answer
    assert served.consumed == {"echo snap": {"e2e/hosts/test_hosts.py::b (call)"}}
    with pytest.raises(RemoteCommandFailed):  # check=True keeps its meaning for a served answer
        snapshot.Served(node, {"false": snapshot.Answer(1, "", "")}, lambda: "t").run("false", check=True)


def test_the_declared_reads_leave_moving_answers_live():
    from calicolab.core import config
    cluster = config.load({"etcd": "3.3.25"}, environ={})
    reads = state_reads.for_node(cluster, cluster.nodes[0])
    assert len(reads) == len(set(reads))
    assert "ETCDCTL_API=2 etcdctl --endpoints http://192.168.223.131:2379 member list" in reads
    # Counters, log sizes, clocks and tallies are never declared: iptables' chain counters move.
    assert not [r for r in reads if r.split()[0] in ("iptables-save", "stat", "journalctl")
                or r.startswith(("docker info", "docker logs"))]
    newer = state_reads.for_node(config.load({"etcd": "3.5.16"}, environ={}), cluster.nodes[0])
    assert not [r for r in newer if "etcdctl" in r]  # v3's member list reads the moving raft index: live


def test_a_check_that_polled_on_is_judged_by_its_live_answers_not_the_snapshot():
    node = StateNode("activating")
    taken = snapshot.Snapshot(0.0, {"node1": snapshot.read(node, [state_reads.CALICO_NODE_ACTIVE])})
    served = snapshot.Served(node, taken.answers["node1"], lambda: "e2e/x.py::polls (call)")
    node.state = "active"
    assert node.run(state_reads.CALICO_NODE_ACTIVE).stdout == "activating\n"  # served
    assert node.run(state_reads.CALICO_NODE_ACTIVE).stdout == "active\n"  # polled on: live
    assert served.consumed == {}  # nothing left for the re-read to hold against the pass


# calicoctl v1.6.1's node status layout (the oracle calicoctl-node-status.json, mesh1-established-time).
STATUS = """Calico process is running.

IPv4 BGP status
+-----------------+-------------------+-------+----------+-------------+
|  PEER ADDRESS   |     PEER TYPE     | STATE |  SINCE   |    INFO     |
+-----------------+-------------------+-------+----------+-------------+
| 192.168.223.130 | node-to-node mesh | up    | {since} | {info} |
+-----------------+-------------------+-------+----------+-------------+

IPv6 BGP status
No IPv6 peers found.

"""


def _status(since: str = "16:37:27", info: str = "Established") -> str:
    return STATUS.format(since=since, info=info)


@pytest.mark.parametrize(("since", "info", "same"), [
    ("16:37:27", "Established", True),
    ("16:37:28", "Established", True),  # BIRD's now_real sampled at another fraction of a second
    ("16:37:26", "Established", True),
    ("16:37:29", "Established", False),  # the session came up again: it flapped
    ("16:38:02", "Established", False),
    ("16:37:27", "Active     ", False),
])
def test_node_status_says_the_same_only_with_one_second_of_play_in_since(since, info, same):
    assert parsers.same_node_status(_status(), _status(since, info)) is same


def test_node_status_with_a_row_more_or_less_is_not_the_same():
    row = "| 192.168.223.130 | node-to-node mesh | up    | 16:37:27 | Established |\n"
    assert not parsers.same_node_status(_status(), _status().replace(row, row + row))
    assert parsers.same_node_status(_status("23:59:59"), _status("00:00:00"))  # across midnight


class StatusNode:
    """A node whose `calicoctl node status` reports the session since `since`."""

    name = "node1"

    def __init__(self) -> None:
        self.since = "16:37:27"

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120) -> CommandResult:
        return CommandResult(self.name, cmd, 0, _every_ask_answered(cmd, 0, _status(self.since)), "")


def test_the_reread_forgives_birds_one_second_of_play_and_nothing_more():
    node = StatusNode()
    taken = snapshot.Snapshot(0.0, {"node1": snapshot.read(node, [state_reads.NODE_STATUS])})
    consumed = {"node1": {state_reads.NODE_STATUS: {"e2e/calico/test_calico.py::mesh (call)"}}}
    node.since = "16:37:28"
    # Byte for byte, BIRD's clock would fail a pass in which nothing changed (CI, stop 31) ...
    assert len(snapshot.recheck({"node1": node}, taken, consumed)) == 1
    # ... compared by what it says, it does not; a session that came up again still does.
    assert snapshot.recheck({"node1": node}, taken, consumed, state_reads.SAME_ANSWER) == []
    node.since = "16:37:40"
    assert len(snapshot.recheck({"node1": node}, taken, consumed, state_reads.SAME_ANSWER)) == 1


LISTENERS = """Netid State  Recv-Q Send-Q Local Address:Port  Peer Address:Port
u_str LISTEN 0      4096   /var/run/docker.sock 6694             * 0
u_str LISTEN 0      128    /run/docker/plugins/calico.sock 31001 * 0
u_str LISTEN 0      128    /run/docker/plugins/calico-ipam.sock 31002 * 0
"""
SHIM = "u_str LISTEN 0      4096   /run/containerd/s/4339ccf5a900 21428 * 0\n"


def test_the_listeners_reread_holds_the_plugins_sockets_and_nothing_else():
    same = state_reads.SAME_ANSWER[state_reads.UNIX_LISTENERS]
    assert same(LISTENERS, LISTENERS + SHIM)  # a workload's shim started during the pass
    assert not same(LISTENERS, LISTENERS.replace("31002", "31950"))  # the IPAM plugin restarted
    gone = "".join(line + "\n" for line in LISTENERS.splitlines() if "calico.sock" not in line)
    assert not same(LISTENERS, gone)  # the check's answer would now be "stale file" or "missing"


# calico/node v2.6.1's processes as `docker top calico-node -eo pid,comm,args` lists them.
TOP = """PID                 COMMAND             COMMAND
2871                runsvdir            /sbin/runsvdir -P /etc/service/enabled
2903                runsv               runsv felix
2904                runsv               runsv bird
2905                runsv               runsv bird6
2906                calico-felix        calico-felix
2907                bird                bird -R -s /var/run/calico/bird.ctl -d -c /etc/calico/confd/config/bird.cfg
2908                bird6               bird6 -R -s /var/run/calico/bird6.ctl -d -c /etc/calico/confd/config/bird6.cfg
"""
# A fork of felix between fork(2) and execve(2): felix's name and arguments under its own PID (CI).
FORK = "3422                calico-felix        calico-felix\n"


def test_the_process_reread_holds_the_services_and_not_their_short_lived_children():
    same = state_reads.SAME_ANSWER[state_reads.CALICO_PROCESSES]
    assert same(TOP, TOP + FORK)  # the re-read caught felix about to exec iptables-restore
    assert same(TOP + FORK, TOP)  # the snapshot did
    assert same(TOP, TOP + "3500                sv                  sv hup bird\n")
    assert not same(TOP, TOP.replace("2906 ", "3423 "))  # felix restarted: a new PID
    assert not same(TOP, TOP.replace("2907 ", "3424 "))  # BIRD restarted
    gone = "".join(line + "\n" for line in TOP.splitlines() if "bird6 -R" not in line)
    assert not same(TOP, gone)  # bird6 stopped: the check would now fail
    assert not same(gone, TOP)  # ... or started during the pass: the snapshot's verdict is stale
    assert not same(TOP, TOP.replace("bird -R -s", "bird -s"))  # BIRD's command line changed

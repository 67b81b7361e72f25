"""Teardown without a lab: what the lab's destroy removes (and what it leaves to others), a
crash in any stage still destroying under --destroy always, Vagrant waited for after Ctrl-C."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time

import pytest

from calicolab.core import config, shell
from calicolab.core.errors import Terminated
from calicolab.infra import vagrant_env
from calicolab.runs.lifecycle import Lifecycle


def _cfg(tmp_path, prefix="arti"):
    return config.load({"run_dir": str(tmp_path / "run"), "reports_dir": str(tmp_path / "reports"),
                        "prefix": prefix, "subnet": "192.168.241.0/24"}, environ={})


class FakeDocker:
    """Answers the docker commands remove_lab_nodes runs, and records them."""

    def __init__(self, by_filter: dict[str, str], inspect: str = "", network: bool = True) -> None:
        self.by_filter, self.inspect, self.network = by_filter, inspect, network
        self.calls: list[list[str]] = []

    def run(self, cmd, check=True, timeout=600, **_kw):
        cmd = list(cmd)
        self.calls.append(cmd)
        out, rc = "", 0
        if cmd[1:3] == ["ps", "-a"]:
            out = self.by_filter.get(cmd[cmd.index("--filter") + 1], "")
        elif cmd[1] == "inspect":
            out = self.inspect
        elif cmd[1:3] == ["network", "inspect"]:
            rc = 0 if self.network else 1
        return shell.Outcome(tuple(cmd), rc, out, "")


@pytest.fixture
def docker(monkeypatch, tmp_path):
    monkeypatch.setattr(vagrant_env, "NETWORK_LOCK", tmp_path / "networks.lock")

    def make(**kwargs):
        fake = FakeDocker(**kwargs)
        monkeypatch.setattr(vagrant_env.shell, "run", fake.run)
        monkeypatch.setattr(vagrant_env.shell, "which_or_none", lambda tool: f"/usr/bin/{tool}")
        return fake
    return make


def test_a_runs_destroy_removes_its_own_containers_and_network_only(tmp_path, docker):
    cfg = _cfg(tmp_path)
    fake = docker(by_filter={f"label=calicolab.run={cfg.run_path}": "aaa arti-node1\nbbb arti-node2\n",
                             "label=calicolab.prefix=arti": "aaa arti-node1\nbbb arti-node2\nccc arti-node9\n"},
                  inspect="ddd /arti-node1-old\n")
    said: list[str] = []
    removed = vagrant_env.remove_lab_nodes(cfg, said.append, ["ddd"], every_run=False)
    filters = [c[c.index("--filter") + 1] for c in fake.calls if "--filter" in c]
    assert filters == [f"label=calicolab.run={cfg.run_path}"]  # never the prefix: not another run's nodes
    rm = next(c for c in fake.calls if c[1:3] == ["rm", "-f"])
    assert sorted(rm[4:]) == ["aaa", "bbb", "ddd"]
    assert ["docker", "network", "rm", "vagrant_network_192.168.241.0/24"] in fake.calls
    assert removed == 4
    assert said[0] == "removing 3 node container(s): arti-node1, arti-node1-old, arti-node2"


def test_an_explicit_destroy_also_removes_every_container_of_the_prefix(tmp_path, docker):
    cfg = _cfg(tmp_path)
    fake = docker(by_filter={"label=calicolab.prefix=arti": "ccc arti-node1\n"}, network=False)
    said: list[str] = []
    assert vagrant_env.remove_lab_nodes(cfg, said.append, [], every_run=True) == 1
    assert ["docker", "rm", "-f", "-v", "ccc"] in [c[:5] for c in fake.calls]
    assert not any(c[1:3] == ["network", "rm"] for c in fake.calls)


def _wait_until(cond, what, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, f"not seen within {seconds:.0f} s: {what}"
        time.sleep(0.02)


def test_a_network_is_not_removed_while_another_lanes_up_reads_the_network_list(tmp_path, docker):
    # The race CI met: lane 1's `vagrant up` lists Docker's networks and inspects them all,
    # lane 2's destroy removes its network in between, lane 1's inspect exits 1 and its up fails.
    cfg = _cfg(tmp_path)
    fake = docker(by_filter={})
    said: list[str] = []
    reading, done = threading.Event(), threading.Event()

    def other_lanes_up():
        with vagrant_env.docker_networks_lock(exclusive=False, say=said.append):
            reading.set()
            done.wait(10)

    up = threading.Thread(target=other_lanes_up)
    up.start()
    assert reading.wait(10)
    remover = threading.Thread(target=vagrant_env.remove_lab_nodes, args=(cfg, said.append, [], False))
    remover.start()
    _wait_until(lambda: "waiting for another lane's `vagrant up` to finish with Docker's networks" in said,
                "the removal saying it waits")
    rm = ["docker", "network", "rm", "vagrant_network_192.168.241.0/24"]
    assert rm not in fake.calls, "the network was removed while another lane's up was reading the list"
    done.set()
    up.join(10)
    remover.join(10)
    assert rm in fake.calls, "the removal did not go on once the up had finished"


def test_a_lab_up_holds_the_network_lock_shared_for_its_whole_run(tmp_path, docker, monkeypatch):
    cfg = _cfg(tmp_path)
    docker(by_filter={})
    cluster = vagrant_env.VagrantCluster(cfg)
    seen: dict[str, bool] = {}

    def stream(what, args, say):
        fd = os.open(vagrant_env.NETWORK_LOCK, os.O_RDONLY)
        try:
            for name, mode in (("exclusive", fcntl.LOCK_EX), ("shared", fcntl.LOCK_SH)):
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    seen[name] = True
                    fcntl.flock(fd, fcntl.LOCK_UN)
                except BlockingIOError:
                    seen[name] = False
        finally:
            os.close(fd)

    monkeypatch.setattr(cluster, "_stream", stream)
    cluster.up(lambda _m: None)
    # Another up may read beside it; a removal may not.
    assert seen == {"exclusive": False, "shared": True}


def test_destroy_on_the_lab_never_calls_vagrant_and_says_when_nothing_was_there(tmp_path, docker, monkeypatch):
    cfg = _cfg(tmp_path)
    docker(by_filter={}, network=False)
    cluster = vagrant_env.VagrantCluster(cfg)
    monkeypatch.setattr(cluster, "_stream", lambda *a: pytest.fail("vagrant destroy on the lab"))
    said: list[str] = []
    cluster.destroy(said.append, leftovers=True)
    assert said == ["nothing to remove for prefix arti (subnet 192.168.241.0/24)"]


def test_the_dotfile_goes_and_recorded_ids_are_removed(tmp_path, docker, monkeypatch):
    cfg = _cfg(tmp_path)
    fake = docker(by_filter={}, inspect="1234 /arti-node1\n", network=False)
    machine = cfg.run_path / ".vagrant" / "machines" / "node1" / "docker"
    machine.mkdir(parents=True)
    (machine / "id").write_text("1234\n")
    vagrant_env.VagrantCluster(cfg).destroy(lambda _m: None, leftovers=False)
    assert ["docker", "inspect", "--format", "{{.Id}} {{.Name}}", "1234"] in fake.calls
    assert not (cfg.run_path / ".vagrant").exists()


@pytest.mark.parametrize("stage", ["box", "up", "provision", "idempotence", "verify"])
def test_a_crash_in_any_stage_still_destroys_under_always(tmp_path, monkeypatch, stage):
    lc = Lifecycle(_cfg(tmp_path), say=lambda _m: None)
    calls: list[str] = []

    def run(name):
        def fn(*_a, **_k):
            calls.append(name)
            with lc.stage(name):
                if name == stage:
                    raise RuntimeError(f"bug in {name}")
        return fn

    def up():
        run("box")()
        run("up")()

    monkeypatch.setattr(lc, "up", up)
    monkeypatch.setattr(lc, "provision", lambda stage_name="provision": run(stage_name)())
    monkeypatch.setattr(lc, "verify", run("verify"))
    monkeypatch.setattr(lc, "destroy", run("destroy"))
    monkeypatch.setattr("calicolab.report.artifacts.collect_quietly", lambda *a, **k: None)
    with pytest.raises(RuntimeError, match=f"bug in {stage}"):
        lc.e2e("always")
    assert calls[-1] == "destroy" and calls.count("destroy") == 1


SLOW_VAGRANT = """import signal, sys, time
def stop(*_):
    print("==> node1: Waiting for cleanup before exiting...", flush=True)
    sys.exit(1)
signal.signal(signal.SIGINT, stop)
print("Bringing machine 'node1' up with 'docker' provider...", flush=True)
time.sleep(30)
"""


def test_after_ctrl_c_vagrant_is_waited_for_and_a_sigterm_is_passed_on(tmp_path, monkeypatch):
    """A SIGTERM reached only this process: Vagrant gets the one graceful SIGINT and is waited
    for (its last words are still shown) before the error goes on."""
    script = tmp_path / "vagrant.py"
    script.write_text(SLOW_VAGRANT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # it is running
    assert first.startswith(b"Bringing machine")
    said: list[str] = []
    vagrant_env._wait_for_stop(proc, "up", said.append, forward=True)
    assert proc.returncode == 1
    assert said[0] == "waiting for vagrant up to stop (at most 180 s)"
    assert "==> node1: Waiting for cleanup before exiting..." in said
    assert issubclass(Terminated, KeyboardInterrupt)  # unwinds every try/finally like Ctrl-C


# Vagrant 2.3.4's stderr when another container on the host went away while the docker provider
# read every container's ports before creating node2 (driver.rb read_used_ports), as CI saw it.
VANISHED_ID = "c7b3016a89e72ebc2681ebeb09f790c8819d1777f5404529243ee8fbcba30bce"
VANISHED_STDERR = f"""==> node2: An error occurred. The error will be shown after all tasks complete.
An error occurred while executing multiple actions in parallel.
Any errors that occurred are shown below.

An error occurred while executing the action on the 'node2'
machine. Please handle this error then try again:

A Docker command executed by Vagrant didn't complete successfully!
The command run along with the output from the command is shown
below.

Command: ["docker", "inspect", "{VANISHED_ID}", {{:notify=>[:stdout, :stderr]}}]

Stderr: Error: No such object: {VANISHED_ID}


Stdout: []
"""


def _failing_ups(cluster, stderrs: list[str], record_id: str = ""):
    """A `vagrant up` that fails with each of stderrs in turn (after recording a node, if given), then passes."""
    calls: list[int] = []

    def stream(what, args, say):
        calls.append(1)
        if len(calls) > len(stderrs):
            return
        if record_id:
            folder = cluster.dotfile / "machines" / "node1" / "docker"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "id").write_text(record_id)
        cluster.err_log.parent.mkdir(parents=True, exist_ok=True)
        cluster.err_log.write_text(stderrs[len(calls) - 1])
        raise vagrant_env.UserError(f"vagrant up failed: {vagrant_env.vagrant_failure(stderrs[len(calls) - 1])}")
    return stream, calls


def test_the_failure_names_the_command_that_failed():
    said = vagrant_env.vagrant_failure(VANISHED_STDERR)
    assert said.startswith("node2: A Docker command executed by Vagrant didn't complete successfully!"), said
    assert said.endswith(f"Stderr: Error: No such object: {VANISHED_ID}"), said
    assert vagrant_env.vanished_container(VANISHED_STDERR) == VANISHED_ID


def test_a_container_gone_while_vagrant_read_the_ports_is_a_race_and_up_runs_again(tmp_path, docker, monkeypatch):
    docker(by_filter={})
    cluster = vagrant_env.VagrantCluster(_cfg(tmp_path))
    stream, calls = _failing_ups(cluster, [VANISHED_STDERR], record_id="1111")
    monkeypatch.setattr(cluster, "_stream", stream)
    said: list[str] = []
    cluster.up(said.append)
    assert len(calls) == 2, said
    assert any("read every container's ports" in m and "attempt 2 of 3" in m for m in said), said
    assert not (cluster.dotfile / "machines" / "node1" / "docker" / "id").exists()  # the failed try's node went


@pytest.mark.parametrize(("stderr", "own_id", "why"), [
    ("An error occurred while executing the action on the 'node1'\nmachine. Please handle this error then try "
     "again:\n\nThe container failed to start.\n", "", "another failure"),
    (VANISHED_STDERR, VANISHED_ID, "this run's own node vanished"),
])
def test_other_failures_are_not_tried_again(tmp_path, docker, monkeypatch, stderr, own_id, why):
    docker(by_filter={})
    cluster = vagrant_env.VagrantCluster(_cfg(tmp_path))
    stream, calls = _failing_ups(cluster, [stderr], record_id=own_id)
    monkeypatch.setattr(cluster, "_stream", stream)
    with pytest.raises(vagrant_env.UserError):
        cluster.up(lambda _m: None)
    assert len(calls) == 1, why


def test_the_race_is_tried_again_a_bounded_number_of_times(tmp_path, docker, monkeypatch):
    docker(by_filter={})
    cluster = vagrant_env.VagrantCluster(_cfg(tmp_path))
    stream, calls = _failing_ups(cluster, [VANISHED_STDERR] * 5)
    monkeypatch.setattr(cluster, "_stream", stream)
    with pytest.raises(vagrant_env.UserError, match="No such object"):
        cluster.up(lambda _m: None)
    assert len(calls) == vagrant_env.LAB_UP_ATTEMPTS

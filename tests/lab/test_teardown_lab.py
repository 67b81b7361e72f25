"""Teardown on the real lab: Ctrl-C in `up` or `provision` (and SIGTERM, a cancelled CI job)
under `--destroy always` leaves no container, no network and no Vagrant dotfile; `invoke
destroy` removes what a killed run left (found by the calicolab.prefix label) and can be
repeated."""

from __future__ import annotations

import re
import signal

from labkit import interrupt, wait_until

from calicolab.core import shell
from calicolab.core.paths import IMAGE_NAMESPACE


def _assert_clean_exit(rc: int, output: str, code: int = 130) -> None:
    assert rc == code, f"exit {rc}\n{output[-2000:]}"
    assert "Traceback" not in output, output[-4000:]
    assert re.search(r"==> destroy\n(.*\n)*<== destroy: passed", output), output[-3000:]


def test_ctrl_c_while_up_runs_leaves_nothing_behind(lane, tmp_path):
    log = tmp_path / "e2e.log"
    proc = lane.start("e2e", "--destroy", "always", log=log)
    # Interrupt once a node container exists: `vagrant up` is half-way.
    wait_until("a node container of the lane", lane.containers, timeout=300, proc=proc, log=log)
    rc = interrupt(proc)
    output = log.read_text(errors="replace")
    _assert_clean_exit(rc, output)
    assert "<== up: failed" in output
    assert lane.leftovers() == {}, output[-3000:]


def test_sigterm_to_the_task_alone_while_up_runs_leaves_nothing_behind(lane, tmp_path):
    log = tmp_path / "e2e.log"
    proc = lane.start("e2e", "--destroy", "always", log=log)
    wait_until("a node container of the lane", lane.containers, timeout=300, proc=proc, log=log)
    rc = interrupt(proc, sig=signal.SIGTERM, group=False)  # Vagrant does not see this one
    output = log.read_text(errors="replace")
    _assert_clean_exit(rc, output, code=143)
    assert output.rstrip().endswith("terminated"), output[-1000:]
    assert lane.leftovers() == {}, output[-3000:]


def test_ctrl_c_while_provision_runs_leaves_nothing_behind(lane, tmp_path):
    log = tmp_path / "e2e.log"
    proc = lane.start("e2e", "--destroy", "always", log=log)

    def provisioning() -> bool:
        text = log.read_text(errors="replace")
        # A step line after the stage started: SSH sessions are open and steps are running.
        return "==> provision" in text and bool(re.search(r"==> provision\n(.*\n)*.*\b(changed|unchanged)\b",
                                                          text))

    wait_until("the provision stage running its steps", provisioning, timeout=300, proc=proc, log=log)
    rc = interrupt(proc)
    output = log.read_text(errors="replace")
    _assert_clean_exit(rc, output)
    assert "<== provision: failed" in output
    assert lane.leftovers() == {}, output[-3000:]


def test_destroy_removes_leftovers_of_a_killed_run_and_can_be_repeated(lane):
    # What a run killed with SIGKILL leaves: its private network, a labelled node container,
    # and no dotfile (here: another run folder's), so only the label and the name find them.
    box = lane.invoke("box", timeout=900)
    assert box.returncode == 0, box.stdout[-2000:] + box.stderr[-2000:]
    shell.run(["docker", "network", "create", "--subnet", lane.subnet, lane.network])
    shell.run(["docker", "run", "-d", "--label", f"calicolab.prefix={lane.prefix}", "--network", lane.network,
               "--name", f"{lane.prefix}-node1", f"{IMAGE_NAMESPACE}/busybox:debian", "sleep", "600"])
    assert lane.leftovers() == {"containers": [f"{lane.prefix}-node1"], "network": lane.network}

    first = lane.invoke("destroy", timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert f"removing 1 node container(s): {lane.prefix}-node1" in first.stdout
    assert f"removed network {lane.network}" in first.stdout
    assert lane.leftovers() == {}

    second = lane.invoke("destroy", timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "Traceback" not in second.stdout + second.stderr
    assert "nothing to remove" in second.stdout
    assert lane.leftovers() == {}

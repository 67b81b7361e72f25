"""The job run beside `invoke test`'s lab steps (the VM lane): lower priority, its output in a
log, stopped by SIGTERM when the lab steps fail, and its failure fails the task."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from invoke import Context, Exit, UnexpectedExit

import tasks
from calicolab.core.polling import wait_for
from calicolab.runs.beside import NICENESS, Beside

# A job that says it started, records SIGTERM in the log, and exits 143 then, as the matrix does.
JOB = ("import signal, sys, time\n"
       "def term(*_):\n"
       "    print('got SIGTERM, tearing down', flush=True); sys.exit(143)\n"
       "signal.signal(signal.SIGTERM, term)\n"
       "print('lane up', flush=True)\n"
       "time.sleep(float(sys.argv[1])); sys.exit(int(sys.argv[2]))\n")


def job(tmp_path: Path, sleep: float, code: int) -> Beside:
    return Beside("VM lane", [sys.executable, "-c", JOB, str(sleep), str(code)], tmp_path / "job.log")


def _niceness(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19: nice


def test_runs_at_lower_priority_and_returns_its_exit_code(tmp_path: Path) -> None:
    lane = job(tmp_path, 0.5, 3).start()
    assert _niceness(lane.proc.pid) == NICENESS
    assert lane.wait(timeout=30) == 3
    assert "lane up" in lane.tail()


def test_stop_sends_sigterm_and_the_job_cleans_up(tmp_path: Path) -> None:
    lane = job(tmp_path, 60, 0).start()
    beside_wait_for_log(lane, "lane up")
    assert lane.stop() == 143
    assert "got SIGTERM, tearing down" in lane.tail()


def test_a_job_past_its_deadline_is_stopped_and_reported_as_none(tmp_path: Path) -> None:
    lane = job(tmp_path, 60, 0).start()
    beside_wait_for_log(lane, "lane up")
    assert lane.wait(timeout=0.2) is None
    assert lane.proc.poll() == 143


def beside_wait_for_log(lane: Beside, text: str) -> None:
    wait_for(lane.tail, lambda t: text in t, f"{lane.name} logs {text!r}", timeout=20)


class FakeContext(Context):
    def __init__(self, fail_at: str | None) -> None:
        super().__init__()
        self.ran: list[str] = []
        self.fail_at = fail_at

    def run(self, command: str, **_):
        self.ran.append(command)
        if self.fail_at and self.fail_at in command:
            raise UnexpectedExit(type("R", (), {"command": command, "exited": 1, "stdout": "", "stderr": "",
                                                "hide": (), "pty": False, "encoding": "utf-8"})())


@pytest.fixture
def vm_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    started: list[Beside] = []

    def fake_start(env, sleep=60.0, code=0):
        lane = job(tmp_path, sleep, code).start(env)
        beside_wait_for_log(lane, "lane up")  # its SIGTERM handler is in place
        started.append(lane)
        return lane

    monkeypatch.setattr(tasks, "_start_vm_lane", fake_start)
    monkeypatch.setattr(tasks, "_start_lab_runs", lambda env: soak_job(tmp_path, 0.2, 0).start(env))
    return started, monkeypatch, tmp_path


def soak_job(tmp_path: Path, sleep: float, code: int) -> Beside:
    return Beside("soak", [sys.executable, "-c", JOB, str(sleep), str(code)], tmp_path / "soak.log", niceness=0)


def test_a_failing_lab_step_stops_the_vm_lane(vm_job) -> None:
    started, _, _ = vm_job
    with pytest.raises(UnexpectedExit):
        tasks.test.body(FakeContext(fail_at="pytest tests"), vm=True)
    assert started and started[0].proc.poll() == 143
    assert "got SIGTERM" in started[0].tail()


def test_a_failing_vm_lane_fails_the_task_with_its_log(vm_job, capsys) -> None:
    _, monkeypatch, tmp_path = vm_job
    monkeypatch.setattr(tasks, "_start_vm_lane", lambda env: job(tmp_path, 0.2, 1).start(env))
    with pytest.raises(Exit) as err:
        tasks.test.body(FakeContext(fail_at=None), vm=True)
    assert err.value.code == 1 and "the VM lane: exit 1; log: " in str(err.value.message)
    assert "lane up" in capsys.readouterr().out


def test_the_vm_lane_runs_by_default_and_no_vm_leaves_it_out(vm_job, capsys) -> None:
    started, monkeypatch, tmp_path = vm_job
    ctx = FakeContext(fail_at=None)
    tasks.test.body(ctx, vm=False)
    assert started == [] and any("matrix --lanes ci" in c for c in ctx.ran)
    monkeypatch.setattr(tasks, "_start_vm_lane", lambda env: started.append(job(tmp_path, 0.2, 0).start(env))
                        or started[-1])
    tasks.test.body(FakeContext(fail_at=None))
    assert len(started) == 1 and started[0].proc.poll() == 0  # waited for, not left running
    assert "VM lane: passed in" in capsys.readouterr().out



def test_its_time_ends_when_it_exits_not_when_it_is_waited_for(tmp_path: Path) -> None:
    # `invoke test` waits for the VM lane only after the lab steps: a lane that ended long before
    # must not read as having run until then.
    lane = job(tmp_path, 0.2, 0).start()
    wait_for(lambda: lane.ended, lambda ended: ended is not None, "the job's end noted", timeout=30, interval=0.05)
    ended_at = lane.seconds
    wait_for(lambda: lane.elapsed, lambda e: e >= ended_at + 1.0, "the caller busy elsewhere", timeout=30)
    assert lane.wait(timeout=30) == 0
    assert lane.seconds == ended_at < 5, (lane.seconds, lane.elapsed)


def test_the_lab_e2e_and_soak_run_beside_the_ci_lanes_at_the_labs_priority(vm_job, capsys) -> None:
    _, monkeypatch, tmp_path = vm_job
    jobs: list[Beside] = []

    class Ctx(FakeContext):
        def run(self, command: str, **kw):
            if "matrix --lanes ci" in command:  # the lab runs are already going beside the lanes
                assert jobs and jobs[0].running and _niceness(jobs[0].proc.pid) == 0
            return super().run(command, **kw)

    def start(env):
        jobs.append(soak_job(tmp_path, 1.0, 0).start(env))
        assert any("pytest tests" in c for c in ctx.ran)  # after the lab tests, whose first lane is its subnet
        return jobs[-1]

    monkeypatch.setattr(tasks, "_start_lab_runs", start)
    ctx = Ctx(fail_at=None)
    tasks.test.body(ctx, vm=False)
    assert jobs[0].proc.poll() == 0  # waited for, not left running
    assert not any("invoke e2e" in c for c in ctx.ran)  # not a step of its own ahead of the lanes
    assert "soak: passed in" in capsys.readouterr().out


def test_the_e2e_runs_before_the_soak_in_one_job(monkeypatch) -> None:
    """Both use the default prefix and subnet: one invoke process runs them in order, and a
    failed e2e stops it before the soak."""
    monkeypatch.setattr(Beside, "start", lambda self, env=None: self)
    job = tasks._start_lab_runs({})
    invoked = job.argv[job.argv.index("invoke") + 1:]
    assert invoked[0] == "e2e" and invoked[1] == "soak", invoked
    assert "--run-dir" in invoked and invoked.index("--run-dir") > invoked.index("soak")  # the soak's own folder
    # The soak repeats the e2e's lifecycle with the e2e's own settings (why one run is enough).
    assert not {"--prefix", "--subnet", "--provider", "--calico-source"} & set(invoked), invoked
    assert job.niceness == 0


def test_a_failing_soak_fails_the_task_and_a_failing_lane_stops_the_soak(vm_job) -> None:
    _, monkeypatch, tmp_path = vm_job
    monkeypatch.setattr(tasks, "_start_lab_runs", lambda env: soak_job(tmp_path, 0.2, 1).start(env))
    with pytest.raises(Exit) as err:
        tasks.test.body(FakeContext(fail_at=None), vm=False)
    assert "the soak: exit 1; log: " in str(err.value.message)
    soaks: list[Beside] = []

    def start(env):
        soaks.append(soak_job(tmp_path, 60.0, 0).start(env))
        beside_wait_for_log(soaks[-1], "lane up")  # its SIGTERM handler is in place
        return soaks[-1]

    monkeypatch.setattr(tasks, "_start_lab_runs", start)
    with pytest.raises(UnexpectedExit):
        tasks.test.body(FakeContext(fail_at="matrix --lanes ci"), vm=False)
    assert soaks[0].proc.poll() == 143 and "got SIGTERM" in soaks[0].tail()

"""The soak task with stand-in lifecycles: per-run folders and output, the spread table and
soak.json, failures counted and named, a bad setting stopping it after the first run."""

from __future__ import annotations

import json
import re
import sys

import pytest

from calicolab.core import config
from calicolab.core.errors import StageFailed, UserError
from calicolab.report.junit import RunReport, StageRecord
from calicolab.runs import soak

TIMES = {"box": 0.5, "up": 20.0, "provision": 15.0, "idempotence": 4.0, "verify": 10.0, "destroy": 1.0}


class FakeLifecycle:
    """Records stages like Lifecycle.e2e; fails a chosen stage on chosen runs."""

    def __init__(self, cfg, say, plan: dict) -> None:
        self.cfg, self.say, self.plan = cfg, say, plan
        self.report = RunReport(cluster=cfg.prefix, provider=cfg.provider, calico="double")

    def e2e(self, destroy, pytest_args, suite):
        index = int(self.cfg.reports_path.name.split("-")[1])
        fail_at, error = self.plan.get(index, (None, None))
        self.say(f"lifecycle output of run {index}")
        print(f"a child process writing to stdout in run {index}", flush=True)
        try:
            for name, seconds in TIMES.items():
                if name == "destroy":
                    continue
                self.report.stages.append(StageRecord(name, seconds + index / 10, "passed"))
                if name == fail_at:
                    self.report.stages[-1].status = "failed"
                    raise error
        finally:
            self.report.stages.append(StageRecord("destroy", TIMES["destroy"], "passed"))
            self.cfg.reports_path.mkdir(parents=True, exist_ok=True)
            (self.cfg.reports_path / "timings.json").write_text(json.dumps({"calico": "double"}))


def _run(tmp_path, runs, plan, suite="checks"):
    cfg = config.load({"run_dir": str(tmp_path / "run"), "reports_dir": str(tmp_path / "reports"),
                       "prefix": "arti"}, environ={})
    said: list[str] = []
    result = soak.run_soak(cfg, runs, said.append, suite=suite,
                           make=lambda c, say: FakeLifecycle(c, say, plan))
    return cfg, result, said


def test_a_soak_counts_passes_and_failures_and_spreads_the_timings(tmp_path):
    plan = {2: ("verify", StageFailed("e2e tests failed: read-only checks (pytest exit 1)"))}
    cfg, result, said = _run(tmp_path, 3, plan)
    assert (result["runs_done"], result["passed"], result["failed"]) == (3, 2, 1)
    assert said[1].startswith("run 1/3: passed in ") and "up 20.1" in said[1]
    assert said[2].startswith("run 2/3: FAILED at verify after ") and "e2e tests failed" in said[2]
    up = result["stages"]["up"]
    assert (up["runs"], up["min"], up["median"], up["max"], up["failed"]) == (3, 20.1, 20.2, 20.3, 0)
    verify = result["stages"]["verify"]
    assert (verify["runs"], verify["failed"], verify["min"], verify["max"]) == (2, 1, 10.1, 10.3)
    assert result["total_seconds"]["passed_runs"]["runs"] == 2
    assert result["total_seconds"]["all_runs"]["runs"] == 3
    assert result["calico"] == "double"
    on_disk = json.loads((cfg.reports_path / "soak.json").read_text())
    assert on_disk["failed"] == 1 and on_disk["runs"][1]["failed_stage"] == "verify"
    text = "\n".join(said)
    assert "soak: 3 of 3 runs, 2 passed, 1 failed (arti, docker provider" in text
    assert "Calico double" in text or "Calico double" in result["calico_description"]
    assert "failures:\n  run 2: verify: e2e tests failed" in text
    table = {cells[0]: cells[1:] for cells in (re.split(r" {2,}", line) for line in text.splitlines())
             if cells[0] in ("stage", "up", "verify", "total", "total (all)")}
    assert table["stage"] == ["runs", "failed", "min s", "median s", "max s"]
    assert table["up"] == ["3", "0", "20.1", "20.2", "20.3"]
    assert table["verify"] == ["2", "1", "10.1", "10.2", "10.3"]
    # the totals leave "failed" blank (it merges into the gap): runs, then min / median / max
    assert (table["total"][0], len(table["total"]), table["total (all)"][0]) == ("2", 4, "3")
    assert list(result["stages"]) == ["box", "up", "provision", "idempotence", "verify", "destroy"]


def test_each_run_keeps_its_reports_and_output_apart(tmp_path, capfd):
    cfg, result, said = _run(tmp_path, 2, {})
    for index in (1, 2):
        out = (cfg.reports_path / "soak" / f"run-0{index}" / "output.log").read_text()
        assert f"lifecycle output of run {index}" in out
        assert f"a child process writing to stdout in run {index}" in out  # fd-level, like pytest's
    assert "a child process writing" not in capfd.readouterr().out
    assert result["runs"][0]["reports"].endswith("soak/run-01")


def test_nothing_ran_stops_the_soak_with_the_reason(tmp_path):
    plan = {1: ("box", UserError("docker is not installed: run `invoke setup`"))}

    class NothingRuns(FakeLifecycle):
        def e2e(self, destroy, pytest_args, suite):
            self.report.stages.append(StageRecord("destroy", 0.0, "passed"))
            raise plan[1][1]

    cfg = config.load({"run_dir": str(tmp_path / "run"), "reports_dir": str(tmp_path / "reports")}, environ={})
    with pytest.raises(UserError, match=r"soak stopped after run 1: docker is not installed"):
        soak.run_soak(cfg, 5, lambda _m: None, make=lambda c, say: NothingRuns(c, say, plan))
    assert json.loads((cfg.reports_path / "soak.json").read_text())["runs_done"] == 1


def test_a_crash_in_one_run_is_recorded_and_the_soak_goes_on(tmp_path):
    plan = {1: ("provision", RuntimeError("paramiko hiccup"))}
    _, result, said = _run(tmp_path, 2, plan)
    assert result["runs"][0]["error"] == "RuntimeError: paramiko hiccup"
    assert result["passed"] == 1


@pytest.mark.parametrize("text,message", [("abc", "--runs must be a whole number, not 'abc'"),
                                          ("0", "--runs must be 1 or more, not 0")])
def test_bad_run_counts(text, message):
    with pytest.raises(UserError, match=message):
        soak.parse_runs(text)


def test_an_unknown_suite_is_refused_before_the_first_run(tmp_path):
    with pytest.raises(UserError, match="unknown suite 'nightly'"):
        _run(tmp_path, 2, {}, suite="nightly")
    assert not (tmp_path / "reports" / "soak").exists()


def test_output_to_restores_the_terminal(tmp_path, capfd):
    with soak.output_to(tmp_path / "log"):
        print("into the file", flush=True)
        sys.stderr.write("errors too\n")
    print("back on the terminal", flush=True)
    assert (tmp_path / "log").read_text() == "into the file\nerrors too\n"
    assert capfd.readouterr().out == "back on the terminal\n"

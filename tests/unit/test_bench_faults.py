"""The bench reports a fault pass only for a run that had one: a read-only run must not print
the fault table an earlier `invoke e2e` left in the reports folder (seen: a read-only bench
printed 65.1 s of fault pass it never ran)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from calicolab.core import config
from calicolab.measure import fault_time
from calicolab.runs import bench

STALE = {"test": "e2e/faults/test_kill_bird.py::t", "seconds": 65.1, "waits": 3, "waiting": 39.8, "needed": 11.2,
         "polling": 32.9, "idle": 4.2, "outside_waits": 25.3, "longest": []}


class QuietLifecycle:
    """Every stage a no-op; verify writes a fault line only for the suite with the fault pass."""

    def __init__(self, cfg, say) -> None:  # noqa: ARG002 - Lifecycle's signature
        self.cfg = cfg
        self.report = SimpleNamespace(stages=[SimpleNamespace(name="verify", seconds=1.0)], calico="double")

    def box(self) -> None: ...
    def up(self) -> None: ...
    def provision(self, _stage: str = "provision") -> None: ...
    def destroy(self) -> None: ...
    def finish(self) -> None: ...

    def verify(self, suite: str, command_log=None) -> None:  # noqa: ARG002
        if suite == "checks":
            fault_time.append(self.cfg.reports_path, {**STALE, "seconds": 30.0})


def _bench(tmp_path, monkeypatch, suite: str) -> dict:
    cfg = config.load({"run_dir": str(tmp_path / "run"), "reports_dir": str(tmp_path / "reports")}, environ={})
    fault_time.append(cfg.reports_path, STALE)  # what an earlier `invoke e2e` left
    monkeypatch.setattr(bench, "Lifecycle", QuietLifecycle)
    monkeypatch.setattr(bench, "_floor", lambda *_: {"wall_seconds": 1.0, "floor_seconds": 1.0, "ratio": 1.0,
                                                      "commands": 1})
    return bench.run_bench(cfg, 1, lambda _m: None, suite=suite)


def test_a_read_only_bench_reports_no_fault_pass(tmp_path, monkeypatch):
    result = _bench(tmp_path, monkeypatch, "read-only")
    assert "fault_pass" not in result
    assert "fault_pass" not in json.loads((tmp_path / "reports" / "bench.json").read_text())


def test_a_bench_with_the_fault_pass_reports_this_runs_lines_only(tmp_path, monkeypatch):
    result = _bench(tmp_path, monkeypatch, "checks")
    assert [f["seconds"] for f in result["fault_pass"]] == [30.0]

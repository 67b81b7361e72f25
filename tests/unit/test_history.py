"""The run history: one line per run, per lane P50/P95 over the last N runs, a run beyond the
others' P95 flagged, `invoke report.history` printing and rendering it."""

import json
import subprocess
import sys

import pytest

from calicolab.core import config
from calicolab.core.errors import UserError
from calicolab.core.paths import ROOT
from calicolab.report import history

LANE = "docker etcd 3.4.23 docker 20.10.24 calico v2.6.1 suite upgrade"


def _run(i: int, verify: float, outage: float, verdict: str = "passed") -> dict:
    return {"started": 1_800_000_000 + i * 3600, "lane": LANE, "verdict": verdict, "reports": f"reports/run-{i}",
            "stages": {"up": 30.0 + i / 10, "verify": verify}, "outages": {"calico upgrade outage": outage},
            "failed_stage": "" if verdict == "passed" else "verify"}


def test_percentiles_interpolate_between_ranks():
    # numpy.percentile([1, 2, 3, 4], [50, 95]) == [2.5, 3.85] (linear, numpy's default)
    assert (history.percentile([4, 1, 3, 2], 50), history.percentile([1, 2, 3, 4], 95)) == (2.5, 3.85)
    assert history.percentile([7.0], 95) == 7.0


def test_a_run_outside_the_others_p95_is_flagged_and_noise_is_not():
    runs = [_run(1, 40.0, 4.2), _run(2, 41.5, 4.5), _run(3, 39.8, 4.4), _run(4, 42.0, 9.8)]
    (lane,) = history.summarize(runs)
    assert lane["runs"] == 4 and lane["pass_rate"] == 1.0
    flags = lane["flags"]
    assert len(flags) == 1 and "calico upgrade outage 9.8 s vs P95 4.5 s" in flags[0] and "run-4" in flags[0]
    outage = next(f for f in lane["figures"] if f["name"] == "calico upgrade outage")
    assert (outage["p50"], outage["last"]) == (4.45, 9.8) and outage["flag"]


def test_only_the_last_n_runs_count_and_failures_are_listed():
    runs = [_run(i, 40.0, 4.0) for i in range(1, 6)] + [_run(6, 300.0, 4.0, "failed")]
    del runs[-1]["stages"]["verify"]  # a failed stage's time is not a figure
    (lane,) = history.summarize(runs, last=3)
    assert lane["runs"] == 3 and lane["passed"] == 2
    assert any("failed at verify" in f for f in lane["flags"])
    assert not any("stage verify" in f for f in lane["flags"])


def test_history_file_is_a_setting_the_environment_overrides(tmp_path):
    cfg = config.load({"reports_dir": str(tmp_path / "r")}, environ={})
    assert cfg.history_path == tmp_path / "r" / "history.jsonl"
    cfg = config.load(environ={"CALICOLAB_HISTORY_FILE": str(tmp_path / "nights.jsonl")})
    assert cfg.history_path == tmp_path / "nights.jsonl"


def test_missing_history_is_one_clear_line(tmp_path):
    with pytest.raises(UserError, match="no history at"):
        history.load(tmp_path / "none.jsonl")


def test_invoke_report_history_prints_and_renders(tmp_path):
    path = tmp_path / "history.jsonl"
    for run in [_run(1, 40.0, 4.2), _run(2, 41.5, 4.5), _run(3, 39.8, 4.4), _run(4, 42.0, 9.8)]:
        history.append(path, run)
    with path.open("a") as out:
        out.write("{not json\n")
    proc = subprocess.run([sys.executable, "-m", "invoke", "report.history", "--reports-dir", str(tmp_path),
                           "--history-file", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "calico upgrade outage 9.8 s vs P95 4.5 s" in proc.stdout
    assert "1 unreadable line(s)" in proc.stdout
    header = next(line for line in proc.stdout.splitlines() if line.startswith("lane"))
    assert header.split() == ["lane", "figure", "runs", "P50", "s", "P95", "s", "last", "s", "flag"]
    page = (tmp_path / "history.html").read_text()
    assert 'data-verdict="flagged"' in page and "9.8 s vs P95 4.5 s" in page
    assert json.loads(path.read_text().splitlines()[0])["lane"] == LANE

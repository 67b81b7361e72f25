"""`invoke soak --runs N`: the whole e2e lifecycle N times in a row on one lane, to find flaky
stages and see how much the timings spread. Every run keeps its own reports (and failure
artifacts) under reports_dir/soak/run-NN/ with the full output in output.log; the soak prints a
line per run, then passes, failures and min/median/max per stage and in total, and writes
reports_dir/soak.json and reports_dir/index.html (linking every run's page).

The host's load average is recorded around every run: timings on a shared machine say as much
about the neighbours as about the stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from calicolab.core.cli_args import whole_number
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import StageFailed, UserError
from calicolab.core.state import calico_label
from calicolab.core.tables import Column, render
from calicolab.report import pages
from calicolab.runs.lifecycle import Lifecycle
from calicolab.runs.passes import suite_passes

STAGE_ORDER = ("box", "up", "provision", "idempotence", "verify", "destroy")


@dataclass
class SoakRun:
    index: int
    passed: bool
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)    # stage -> seconds (as run)
    statuses: dict[str, str] = field(default_factory=dict)   # stage -> passed | failed | skipped
    error: str = ""        # first line of the failure, empty when passed
    failed_stage: str = ""
    reports: str = ""      # this run's reports folder
    load_before: float = 0.0  # 1-minute load average of the host
    load_after: float = 0.0


@dataclass(frozen=True)
class Spread:
    runs: int
    min: float
    median: float
    max: float


def spread(values: list[float]) -> Spread | None:
    if not values:
        return None
    return Spread(len(values), round(min(values), 1), round(statistics.median(values), 1), round(max(values), 1))


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


LifecycleFactory = Callable[[ClusterConfig, Callable[[str], None]], Lifecycle]


def one_run(cfg: ClusterConfig, index: int, suite: str, make: LifecycleFactory) -> SoakRun:
    # Each run's own reports folder; the history stays the soak's (one line per run).
    run_cfg = replace(cfg, reports_dir=str(cfg.reports_path / "soak" / f"run-{index:02d}"),
                      history_file=str(cfg.history_path))
    run_cfg.reports_path.mkdir(parents=True, exist_ok=True)
    log_path = run_cfg.reports_path / "output.log"
    result = SoakRun(index, False, 0.0, reports=str(run_cfg.reports_path), load_before=_load())
    start = time.monotonic()
    with output_to(log_path):
        def say(message: str) -> None:
            print(message, flush=True)

        lc = make(run_cfg, say)
        try:
            lc.e2e("always", [], suite)
            result.passed = True
        except (StageFailed, UserError) as err:
            result.error = (str(err).splitlines() or [err.__class__.__name__])[0]
            say(f"soak: run {index} failed: {err}")
        except Exception as err:  # a crash is a soak finding too, not the end of the soak
            result.error = f"{err.__class__.__name__}: {err}".splitlines()[0]
            say(f"soak: run {index} crashed: {result.error}")
        finally:
            result.seconds = round(time.monotonic() - start, 1)
            result.load_after = _load()
            for stage in lc.report.stages:
                result.stages[stage.name] = stage.seconds
                result.statuses[stage.name] = stage.status
                if stage.status == "failed" and not result.failed_stage:
                    result.failed_stage = stage.name
    return result


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr to a file for the duration, at the descriptor
    level (children: pytest, vagrant) and the Python level: the soak shows a line per run."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("a") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            yield
        finally:
            out.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def describe(run: SoakRun, runs: int) -> str:
    stages = ", ".join(f"{name} {run.stages[name]:.1f}" for name in _ordered(run.stages))
    if run.passed:
        return f"run {run.index}/{runs}: passed in {run.seconds:.1f} s ({stages}); load {run.load_before:.1f}"
    where = f" at {run.failed_stage}" if run.failed_stage else ""
    return (f"run {run.index}/{runs}: FAILED{where} after {run.seconds:.1f} s: {run.error} "
            f"(output: {run.reports}/output.log)")


def _ordered(names) -> list[str]:
    known = [n for n in STAGE_ORDER if n in names]
    return known + sorted(n for n in names if n not in STAGE_ORDER)


def summarize(cfg: ClusterConfig, runs: list[SoakRun], planned: int, calico: str) -> dict:
    """The soak's result as data: per stage the spread of passed stages, in total the spread of
    the runs' wall time (passed runs and all runs)."""
    stage_names = _ordered({name for r in runs for name in r.stages})
    stages = {}
    for name in stage_names:
        passed = [r.stages[name] for r in runs if r.statuses.get(name) == "passed"]
        failed = sum(1 for r in runs if r.statuses.get(name) == "failed")
        sp = spread(passed)
        stages[name] = {**(asdict(sp) if sp else {"runs": 0}), "failed": failed}
    total_passed = spread([r.seconds for r in runs if r.passed])
    total_all = spread([r.seconds for r in runs])
    load = spread([r.load_before for r in runs] + [r.load_after for r in runs])
    return {
        "prefix": cfg.prefix, "provider": cfg.provider, "subnet": cfg.subnet, "calico": calico,
        "calico_description": calico_label(calico),
        "versions": asdict(cfg.versions), "planned_runs": planned, "runs_done": len(runs),
        "passed": sum(r.passed for r in runs), "failed": sum(not r.passed for r in runs),
        "stages": stages,
        "total_seconds": {"passed_runs": asdict(total_passed) if total_passed else None,
                          "all_runs": asdict(total_all) if total_all else None},
        "host": {"cpus": os.cpu_count(), "load_1min": asdict(load) if load else None},
        "runs": [asdict(r) for r in runs],
    }


def table(result: dict) -> str:
    def spread_cells(row: dict) -> tuple[str, str, str]:
        # A stage that never passed has no timings: "-" rather than a misleading 0.0.
        if not row["runs"]:
            return ("-", "-", "-")
        return (f"{row['min']:.1f}", f"{row['median']:.1f}", f"{row['max']:.1f}")

    head = ("stage", *(Column(name, align="right") for name in ("runs", "failed", "min s", "median s", "max s")))
    rows = [(name, str(row["runs"]), str(row["failed"]), *spread_cells(row)) for name, row in result["stages"].items()]
    totals = [(label, str(row["runs"]), "", *spread_cells(row))
              for label, row in (("total", result["total_seconds"]["passed_runs"]),
                                 ("total (all)", result["total_seconds"]["all_runs"])) if row]
    lines = [f"soak: {result['runs_done']} of {result['planned_runs']} runs, {result['passed']} passed, "
             f"{result['failed']} failed ({result['prefix']}, {result['provider']} provider, "
             f"calico: {result['calico_description']})",
             render(head, rows, footer=totals)]
    load = result["host"]["load_1min"]
    if load:
        lines.append(f"host: {result['host']['cpus']} CPUs, 1-min load average {load['min']:.1f} to "
                     f"{load['max']:.1f} around the runs")
    failures = [r for r in result["runs"] if not r["passed"]]
    if failures:
        lines.append("failures:")
        lines += [f"  run {r['index']}: {r['failed_stage'] or '?'}: {r['error']} ({r['reports']})" for r in failures]
    return "\n".join(lines)


def _default_lifecycle(cfg: ClusterConfig, say: Callable[[str], None]) -> Lifecycle:
    return Lifecycle(cfg, say=say)


def parse_runs(text: str | int) -> int:
    """--runs as given on the command line."""
    return whole_number("--runs", text, minimum=1, example="10")


def run_soak(cfg: ClusterConfig, runs: int, say: Callable[[str], None], suite: str = "checks",
             make: LifecycleFactory = _default_lifecycle) -> dict:
    parse_runs(runs)
    suite_passes(suite)  # an unknown suite is refused before the first run
    done: list[SoakRun] = []
    say(f"soak: {runs} e2e lifecycle(s) on prefix {cfg.prefix}, subnet {cfg.subnet} "
        f"(per-run reports under {cfg.reports_path / 'soak'})")
    try:
        for index in range(1, runs + 1):
            run = one_run(cfg, index, suite, make)
            done.append(run)
            say(describe(run, runs))
            if not run.passed and not run.stages.keys() - {"destroy", "preflight"}:
                # Nothing ran: bad settings or a missing tool; every further run would say the same.
                raise UserError(f"soak stopped after run {index}: {run.error}")
    finally:
        calico = _calico_of(done)
        result = summarize(cfg, done, runs, calico)
        path = write(cfg.reports_path, result)
        page = pages.write_index(cfg.reports_path, "soak", result)
        if done:
            say("")
            say(table(result))
        say(f"written: {path}, {page}")
    return result


def _calico_of(runs: list[SoakRun]) -> str:
    for run in runs:
        try:
            data = json.loads((Path(run.reports) / "timings.json").read_text())
        except (OSError, ValueError):
            continue
        if data.get("calico") not in (None, "unknown"):
            return data["calico"]
    return "unknown"


def write(folder: Path, result: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "soak.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path

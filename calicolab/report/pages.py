"""Writing the HTML pages of a reports folder from its JSON: a run's page, the index of a matrix
(matrix.json) or a soak (soak.json), and the history page. `invoke report` calls regenerate(),
the lifecycle, matrix and soak call the writers directly, so both give the same page."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from calicolab.core.errors import UserError
from calicolab.report import history, html, run_data, run_record

HISTORY_PAGE = "history.html"


def write_run_page(folder: Path, base: dict[str, Any] | None = None) -> tuple[dict[str, Any], Path]:
    """Gather the run JSON (calicolab/report/run_data.py), write run.json and index.html. A run
    record that spans tasks (calicolab/report/run_record.py) is shown again as it is: its tests
    were read when each task ended (a later task may have rewritten the JUnit file since)."""
    record = run_record.read(folder)
    if base is None and run_record.is_record(record):
        data = dict(record)
        data["files"] = sorted({*data.get("files", []), *data.get("sources", []), *run_data.OWN_FILES})
        data["files"] = [f for f in data["files"] if (folder / f).is_file()]
        judged = run_record.judge(data)
        data["verdict"], data["exit"] = judged["verdict"], judged["exit"]
    else:
        data = run_data.collect(folder, base)
    return data, _write(folder, data)


def _write(folder: Path, data: dict[str, Any]) -> Path:
    run_data.write(folder, data)
    page = folder / run_data.INDEX
    page.write_text(html.run_page(data))
    return page


def write_task(folder: Path, facts: dict[str, Any], run_id: str | None, task: str, task_no: int | None,
               closes: bool) -> tuple[dict[str, Any], int, Path]:
    """A task that ended joins its run's record (or starts one): run.json and index.html again;
    (the record, the task's number in it, the page)."""
    data, task_no = run_record.add_task(folder, facts, run_id, task, task_no, closes)
    return data, task_no, _write(folder, data)


def _tests_cell(counts: dict[str, int]) -> str:
    total = counts.get("tests", 0)
    bad = counts.get("failures", 0) + counts.get("errors", 0)
    text = f"{total - bad - counts.get('skipped', 0)}/{total}"
    return text + (f" ({counts['skipped']} skipped)" if counts.get("skipped") else "")


def _link(folder: Path, target: Path) -> str:
    return run_data.relative(str(target / run_data.INDEX), folder)


def matrix_entries(folder: Path, matrix: dict[str, Any]) -> list[dict[str, Any]]:
    entries = []
    for lane in matrix.get("lanes", []):
        reports = Path(lane.get("reports", folder / "lanes" / lane["name"]))
        run = _read_run(reports)
        settings = ", ".join(f"{k}={v}" for k, v in sorted((lane.get("settings") or {}).items())) or "defaults"
        entries.append({"name": lane["name"], "link": _link(folder, reports),
                        "verdict": run.get("verdict") or ("passed" if lane.get("rc") == 0 else "failed"),
                        "label": f"{settings}; suite {lane.get('suite', '')}", "calico": lane.get("calico", ""),
                        "tests": _tests_cell(lane.get("tests") or {}), "seconds": lane.get("seconds"),
                        "stages": lane.get("stages") or {}, "error": html.reason(run) if run else
                        ("" if lane.get("rc") == 0 else f"rc {lane.get('rc')}: no run report")})
    return entries


def soak_entries(folder: Path, soak: dict[str, Any]) -> list[dict[str, Any]]:
    entries = []
    for run in soak.get("runs", []):
        reports = Path(run.get("reports", ""))
        data = _read_run(reports)
        tests = data.get("tests", [])
        passed = sum(t["status"] == "passed" for t in tests)
        entries.append({"name": f"run {run['index']:02d}", "link": _link(folder, reports),
                        "verdict": data.get("verdict") or ("passed" if run.get("passed") else "failed"),
                        "label": history.lane_key(data) if data else "", "calico": soak.get("calico", ""),
                        "tests": f"{passed}/{len(tests)}" if tests else "-", "seconds": run.get("seconds"),
                        "stages": run.get("stages") or {}, "error": run.get("error", "")})
    return entries


def _read_run(reports: Path) -> dict[str, Any]:
    data = run_data.read_json(reports / run_data.RUN_JSON)
    return data if isinstance(data, dict) else {}


STAGES = ("box", "up", "provision", "idempotence", "verify", "destroy")


def write_index(folder: Path, kind: str, data: dict[str, Any]) -> Path:
    """The index page of a matrix (kind "matrix", matrix.json) or a soak (kind "soak", soak.json)."""
    if kind == "matrix":
        entries = matrix_entries(folder, data)
        summary = f"{len(entries)} lane(s) side by side, wall clock {html.seconds(data.get('wall_seconds'))}"
    else:
        entries = soak_entries(folder, data)
        summary = (f"{data.get('runs_done', len(entries))} of {data.get('planned_runs', '?')} runs on "
                   f"{data.get('prefix', '')}, calico: {data.get('calico_description', data.get('calico', ''))}")
    names = [s for s in STAGES if any(s in (e.get("stages") or {}) for e in entries)]
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / run_data.INDEX
    page.write_text(html.index_page(f"calicolab {kind}: {folder.name}", summary, entries, names))
    return page


def write_history(folder: Path, source: Path, last: int) -> tuple[str, Path]:
    entries, bad = history.load(source)
    lanes = history.summarize(entries, last)
    text = history.table(lanes)
    if bad:
        text += f"\n{bad} unreadable line(s) in {source} skipped"
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / HISTORY_PAGE
    page.write_text(html.history_page(lanes, source, last))
    return text, page


def regenerate(folder: Path) -> Path:
    """index.html again from the newest of the folder's run.json (or timings.json), matrix.json
    and soak.json."""
    candidates = [folder / n for n in (run_data.RUN_JSON, "timings.json", "matrix.json", "soak.json")]
    present = [p for p in candidates if p.is_file()]
    if not present:
        raise UserError(f"{folder} holds no run report (run.json, timings.json, matrix.json or soak.json): "
                        "name the run's folder with --reports-dir")
    newest = max(present, key=lambda p: p.stat().st_mtime)
    if newest.name in ("matrix.json", "soak.json"):
        data = run_data.read_json(newest)
        if not isinstance(data, dict):
            raise UserError(f"{newest} is not valid JSON: run the {newest.stem} again")
        return write_index(folder, newest.stem, data)
    return write_run_page(folder)[1]


def save_doctor(folder: Path, doctor: dict[str, Any]) -> Path:
    """doctor.json beside the run's reports (a doctor task's end adds it to the run's record)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "doctor.json"
    path.write_text(json.dumps(doctor, indent=2) + "\n")
    return path


def add_doctor(folder: Path, doctor: dict[str, Any]) -> Path | None:
    """Keep `invoke doctor`'s findings beside the run's reports and show them on its page (when
    the folder has a run page to add them to)."""
    save_doctor(folder, doctor)
    if not (folder / run_data.RUN_JSON).is_file():
        return None
    record = run_record.read(folder)
    if run_record.is_record(record):  # findings outside a task of the run: shown, and judged
        record["doctor"] = doctor
        record["sources"] = sorted({*record.get("sources", []), "doctor.json"})
        run_data.write(folder, record)
    return write_run_page(folder)[1]


def report(folder: Path, history_source: Path, with_history: bool, last: int,
           say: Callable[[str], None] = print) -> None:
    """`invoke report`: the page again from the folder's JSON; with the history, its table and page."""
    if with_history:
        text, page = write_history(folder, history_source, last)
        say(text)
        say(f"history page: {page}")
        return
    say(f"run page: {regenerate(folder)}")

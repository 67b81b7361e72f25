"""A run spans tasks: `invoke up`, `provision`, `verify`, `upgrade`, `doctor`, `destroy` typed one
after the other are one run, and its record (`<reports>/run.json`, shape in run_data.py) and page
speak for all of them.

`up` or `e2e` starts a run (`e2e` always a new one; `up` joins a run still open in the same run
folder, e.g. after a failed `up`); any other task joins the open run of its run folder, or starts
one when there is none. Each task adds its stages, passes and tests (tagged with the task) when it
ends; `destroy` and the end of `e2e` close the run. The run folder's state (`run_id`) names the
open run, and the record carries the same id: a record of another run in the reports folder is
never joined, it is moved aside to `earlier/<when>/` first (links inside it keep working, the
folder moves whole), and the newest EARLIER_KEPT of those are kept.

The verdict is judged from everything the page shows (judge()): every task's ending, every
stage, every test, every rehearsal and drill; PASSED only when none failed, and an open run that
has not failed says "run in progress".
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from calicolab.report import run_data

SCHEMA = 2
EARLIER = "earlier"
EARLIER_KEPT = 5
# A run's own files in its reports folder (output.log is not: a matrix or soak writes it before
# the run starts, and keeps writing it).
RUN_FILES = ("run.json", "index.html", "lifecycle.xml", "timings.json", "upgrade.json", "drills.json",
             "doctor.json", "connectivity.json", "probes.json", "events.json", "artifacts")
RUN_GLOBS = ("e2e*.xml",)
# The stages a manual loop runs (`invoke up`, `provision`, `verify`, `destroy`): what an open
# run still has ahead of it when it has not run them yet.
LOOP = ("up", "provision", "verify", "destroy")
# How bad a task's ending is: the worst one is the run's verdict. An interruption, a cancelled job
# or a crash explains the stage it broke, so it outranks that stage's failure.
RANK = {"passed": 0, "running": 0, "refused": 1, "failed": 2, "interrupted": 3, "terminated": 4, "crashed": 5}
BAD_TESTS = ("failed", "error")


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 1_000_000:06d}"


def read(folder: Path) -> dict[str, Any] | None:
    data = run_data.read_json(folder / run_data.RUN_JSON)
    return data if isinstance(data, dict) else None


def is_record(data: dict[str, Any] | None) -> bool:
    """A run.json written by this module (one that lists its tasks), not an older single-task one."""
    return bool(data) and data.get("schema") == SCHEMA and isinstance(data.get("tasks"), list)


def joins(folder: Path, run_id: str | None) -> bool:
    """Whether a task of the run run_id (None: whichever is open) adds to the record in folder."""
    record = read(folder)
    return is_record(record) and bool(record.get("open")) and (run_id is None or record.get("run_id") == run_id)


def _run_files(folder: Path) -> list[Path]:
    found = [folder / n for n in RUN_FILES if (folder / n).exists()]
    found += [p for g in RUN_GLOBS for p in sorted(folder.glob(g))]
    page = folder / run_data.INDEX
    if page in found and "<h1>calicolab run report</h1>" not in page.read_text(errors="replace"):
        found.remove(page)  # a matrix's or a soak's index, not a run page
    return found


def move_aside(folder: Path) -> Path | None:
    """Move the files of an earlier run out of the way, to earlier/<when>/; None when there were none."""
    files = _run_files(folder)
    if not files:
        return None
    earlier = read(folder) or {}
    when = earlier.get("started") or max(p.stat().st_mtime for p in files)
    name = datetime.fromtimestamp(when).strftime("%Y%m%d-%H%M%S")
    target = folder / EARLIER / name
    n = 1
    while target.exists():
        n += 1
        target = folder / EARLIER / f"{name}-{n}"
    target.mkdir(parents=True)
    for path in files:
        shutil.move(str(path), str(target / path.name))
    kept = sorted((p for p in (folder / EARLIER).iterdir() if p.is_dir()), key=lambda p: p.name)
    for old in kept[:-EARLIER_KEPT]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def earlier_runs(folder: Path) -> list[dict[str, Any]]:
    """The runs moved aside in folder, newest first: where their page is, and what they said."""
    runs = []
    base = folder / EARLIER
    for path in sorted((p for p in base.iterdir() if p.is_dir()), reverse=True) if base.is_dir() else []:
        data = read(path) or {}
        runs.append({"page": f"{EARLIER}/{path.name}/{run_data.INDEX}", "name": path.name,
                     "verdict": data.get("verdict", "unknown"), "command": data.get("command", ""),
                     "started": data.get("started")})
    return runs


def _shift(items: list[dict], by: float) -> None:
    for item in items:
        if isinstance(item, dict) and item.get("start") is not None:
            item["start"] = round(float(item["start"]) + by, 1)


def add_task(folder: Path, facts: dict[str, Any], run_id: str | None, task: str, task_no: int | None,
             closes: bool) -> tuple[dict[str, Any], int]:
    """Add a task that ended (facts: the lifecycle's run_facts, `started` the task's start) to the
    run's record in folder, or start the record; (the record, the task's number in it). A task
    written again (task_no given) replaces its earlier entries."""
    record = read(folder) if joins(folder, run_id) else None
    # The files earlier tasks read (name -> version) are theirs: not this task's again.
    read_before = {k: v for t in (record or {}).get("tasks", []) if t.get("task_no") != task_no
                   for k, v in (t.get("read") or {}).items()}
    part = run_data.collect(folder, facts, seen=read_before)
    if record is None:
        record = {"schema": SCHEMA, "kind": "run", "run_id": run_id or new_run_id(), "started": part["started"],
                  "tasks": [], "stages": [], "passes": [], "tests": [], "upgrade": [], "drills": [],
                  "connectivity": [], "probe_gaps": [], "events": [], "sources": [], "doctor": None,
                  "calico": "unknown", "calico_seen": "", "calico_label": part.get("calico_label", ""),
                  "earlier": earlier_runs(folder)}
    if task_no is None:
        task_no = len(record["tasks"])
    for key in ("tasks", "stages", "passes", "tests", "upgrade", "drills", "connectivity", "probe_gaps", "events",
                "faults"):
        record[key] = [x for x in record.get(key, []) if not (isinstance(x, dict) and x.get("task_no") == task_no)]
    shift = round(float(part["started"]) - float(record["started"]), 1)
    tag = {"task": task, "task_no": task_no}
    for key in ("stages", "passes", "tests", "upgrade", "drills", "probe_gaps", "events", "faults"):
        items = [dict(x, **tag) for x in part.get(key, []) if isinstance(x, dict)]
        if key in ("stages", "passes", "tests", "probe_gaps", "events"):
            _shift(items, shift)
        record[key] += items
    record["connectivity"] += [dict(x, **tag) for x in part.get("connectivity", []) if isinstance(x, dict)]
    names = {*part.get("sources", []), *(p["junit"] for p in part.get("passes", []))}
    record["tasks"].append({**tag, "verdict": part.get("verdict", "failed"), "exit": part.get("exit") or {},
                            "started": part["started"], "finished": part.get("finished"),
                            "seconds": part.get("seconds"),
                            "read": {n: run_data.stamp(folder / n) for n in sorted(names) if (folder / n).is_file()}})
    record["tasks"].sort(key=lambda t: t["task_no"])
    if part.get("doctor"):
        record["doctor"] = part["doctor"]
    # Which Calico ran is known once a task looked (provision inspects the node; later tasks read
    # what it saw from the run folder), and stays known when a later task did not look (destroy
    # clears the state); a task that saw another (an upgrade) says so.
    known = record.get("calico") not in (None, "", "unknown")
    looked = part.get("calico") not in (None, "", "unknown")
    if looked and (not known or (part.get("calico_seen") and part.get("calico_seen") != record.get("calico_seen"))):
        record.update(calico=part["calico"], calico_seen=part.get("calico_seen", ""),
                          calico_label=part.get("calico_label", ""), calico_task=task)
    for key in ("cluster", "provider", "machine", "pass_names"):
        if part.get(key):
            record[key] = part[key]
    record["lane"] = {**(record.get("lane") or {}), **{k: v for k, v in (part.get("lane") or {}).items() if v}}
    versions = dict(part.get("versions") or {})
    members = (record.get("versions") or {}).get("members", []) + versions.pop("members", [])
    record["versions"] = {**(record.get("versions") or {}), **versions, **({"members": members} if members else {})}
    record["command"] = ", ".join(f"invoke {t['task']}" for t in record["tasks"])
    record["finished"] = part.get("finished")
    record["seconds"] = round(float(record["finished"] or record["started"]) - float(record["started"]), 1)
    record["open"] = not closes
    record["sources"] = sorted(set(record.get("sources", [])) | set(part.get("sources", [])))
    record["outages"] = run_data.outages(record["upgrade"], record["probe_gaps"])
    record["files"] = sorted(set(record.get("files", [])) | set(part.get("files", [])))
    record["files"] = [f for f in record["files"] if (folder / f).is_file()]
    judged = judge(record)
    record["verdict"], record["exit"] = judged["verdict"], judged["exit"]
    return record, task_no


def progress(data: dict[str, Any]) -> tuple[int, int]:
    """(stages done, stages in the run) of an open run: what it ran, and the manual loop's stages
    it has not run yet."""
    names = list(dict.fromkeys(s["name"] for s in data.get("stages", []) if s.get("status") != "pending"))
    ahead = [n for n in LOOP if n not in names]
    return len(names), len(names) + len(ahead)


def judge(data: dict[str, Any]) -> dict[str, Any]:
    """The run's verdict from everything its page shows: {verdict, exit, failed_stages, bad_tests,
    task (the task whose ending decided it, if one did)}."""
    tasks = data.get("tasks") if is_record(data) else None
    endings = tasks if tasks else [{"task": data.get("command") or "", "verdict": data.get("verdict") or "failed",
                                    "exit": data.get("exit") or {}}]
    failed_stages = [s for s in data.get("stages", []) if s.get("status") == "failed"]
    bad_tests = [t for t in data.get("tests", []) if t.get("status") in BAD_TESTS]
    problems = [x for key in ("upgrade", "drills") for x in data.get(key) or [] if (x or {}).get("problems")]
    doctor = data.get("doctor") or {}
    doctor_failed = any(f.get("result") == "FAIL" for f in doctor.get("findings", []))
    shown_failed = bool(failed_stages or bad_tests or problems or doctor_failed)
    refused = any(s.get("status") == "refused" for s in data.get("stages", []))
    worst = max(endings, key=lambda t: RANK.get(t.get("verdict", "failed"), 2))
    verdict = worst.get("verdict", "failed") if RANK.get(worst.get("verdict"), 2) > RANK["failed"] else None
    if verdict is None:
        verdict = "failed" if shown_failed or worst.get("verdict") == "failed" else \
            "refused" if refused or worst.get("verdict") == "refused" else "passed"
    if verdict == "passed" and data.get("open"):
        verdict = "running"
    deciding = next((t for t in endings if t.get("verdict") == verdict), None)
    if deciding is None and verdict == "failed":
        deciding = next((t for t in endings if t.get("verdict") not in ("passed", None)), None)
    if deciding is not None:
        exit_ = dict(deciding.get("exit") or {})
    elif verdict in ("passed", "running"):
        exit_ = {"code": 0, "error": ""}
    else:  # failures shown that no task's ending reported (a page made from files alone)
        exit_ = {"code": 1, "error": ""}
    return {"verdict": verdict, "exit": exit_, "failed_stages": failed_stages, "bad_tests": bad_tests,
            "task": (deciding or {}).get("task", "")}

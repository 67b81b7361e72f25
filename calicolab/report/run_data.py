"""The run JSON (`<reports>/run.json`): everything the run page shows, gathered from what the run
left in its reports folder, so the page (calicolab/report/html.py) is a view of data, never a
second source of truth. `invoke report` gathers it again from the same files.

Sources, read when present and not older than the run (a file left by an earlier run in the same
folder is not this run's):
  run.json            the lifecycle's own facts (verdict, exit, versions, lane, machine, stages),
                      kept across regenerations;
  timings.json        the stages, when run.json is missing (reports of older runs);
  e2e*.xml            pytest's JUnit per verify pass: every test, its result and duration, and for
                      a failure the assertion helpers' text (e2e/expect.py) split into expected /
                      seen / likely cause, with its [[ATTACHMENT|...]] artifact files;
  upgrade.json        `invoke upgrade`'s rehearsals: hops, keyspace diff, background ping;
  doctor.json         `invoke doctor`'s findings;
  connectivity.json   the connectivity matrix per step (shape below);
  probes.json         probe gaps per direction (shape below);
  events.json         further timeline rows (injected faults, upgrade steps, BGP states, etcd leader).

Shape of run.json (schema 1); times are seconds, `start` is seconds after `started`:
  schema, kind="run", verdict: passed | failed | refused | interrupted | terminated | crashed,
  exit: {code, error}, started, finished (epoch), seconds,
  cluster, provider, calico, calico_label, calico_seen,
  lane: {name, key, suite, prefix, subnet, provider, etcd_tls, destroy, idempotence ("true" | "false"), pytest_args},
  versions: {asked: {etcd, docker, calico, calicoctl}, after: {...},
             members: [{node, component, before, after, seconds, gate}]},
  machine: {hostname, os, kernel, cpus, memory_gb, load_1min, python},
  stages: [{name, status, seconds, start, detail, attachments: [path]}],
  passes: [{junit, name, tests, failures, errors, skipped, seconds, start}],
  tests: [{junit, classname, name, status, seconds, start, message, expected, seen, cause, text,
           attachments: [path]}],
  events: [{row, label, start, seconds, status}],
  connectivity: [{step, rows: [{src, dst, proto, expected, seen}]}],
  probe_gaps: [{step, direction, start, seconds}]   (probes.json may give `at`, the wall clock,
                             instead of `start`: the writer does not know when the run began),
  upgrade: [upgrade.json's entries], drills: [drills.json's entries], doctor: doctor.json | null,
  sources: [file name]       (the files above this page was made from),
  outages: {name: seconds}   (the history's outage figures: longest probe gap per step, traffic
                              lost during each rehearsal),
  files: [path]              (the run's own files in the folder, for links).
A run that spans tasks (calicolab/report/run_record.py, schema 2) adds: run_id, open (true until
destroy or e2e's end closes it), tasks: [{task, task_no, verdict, exit, started, finished, seconds,
read: {file: version}}], calico_task (the task that saw the Calico named), and on every stage,
pass, test, rehearsal, drill, connectivity step, probe gap and event its `task` and `task_no`;
`verdict` and `exit` are then the run's (run_record.judge()), each task's own are in `tasks`,
and the timeline's `start` is seconds after the run's first task started.
Paths are relative to the reports folder where they lie inside it (the page links them).
Expected and seen in connectivity rows are "ok" | "blocked" (anything else is shown as given).
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

from calicolab.stack.workloads import BACKGROUND_INTERVAL

SCHEMA = 1
RUN_JSON = "run.json"
INDEX = "index.html"
_ATTACHMENT = re.compile(r"\[\[ATTACHMENT\|([^\]]+)\]\]")
_FIELDS = {"expected:": "expected", "seen:": "seen", "likely cause:": "cause"}
OWN_FILES = ("lifecycle.xml", "timings.json", RUN_JSON, "output.log")
MTIME_SLACK = 2.0  # seconds: a file's mtime and the run's clock may differ by a filesystem tick


def machine() -> dict[str, Any]:
    """The host the run ran on: timings on a shared 2-CPU host say as much about it as the stack."""
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {"hostname": socket.gethostname(), "os": _os_name(), "kernel": platform.release(),
            "cpus": os.cpu_count(), "memory_gb": _memory_gb(), "load_1min": load,
            "python": platform.python_version()}


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def stamp(path: Path) -> str:
    """A file's version: its name's content changes with it (a task that rewrites it)."""
    st = path.stat()
    return f"{st.st_mtime_ns}:{st.st_size}"


def _fresh(path: Path, started: float | None, sources: list[str] | None = None, later: bool = False,
           seen: dict[str, str] | None = None) -> bool:
    """Whether a file is this run's. When the lifecycle writes the page, by its time; again later
    (`invoke report`, reports copied or checked out, their times lost), by run.json's list of the
    files it was made from, plus for `later` files (the doctor, a rehearsal run on the kept
    cluster after the run) those written since. A file an earlier task of the run already read
    (seen: name -> stamp) is that task's, however soon after it this one began."""
    if not path.is_file():
        return False
    if seen and seen.get(path.name) == stamp(path):
        return False
    newer = started is None or path.stat().st_mtime >= started - MTIME_SLACK
    if sources is None:
        return newer
    return path.name in sources or (later and newer)


def relative(path: str, folder: Path) -> str:
    """A path as the page links it: relative to the reports folder when inside it. Reports copied
    elsewhere keep working: a path whose `artifacts/...` tail exists in this folder is linked there."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(folder.resolve()))
    except (ValueError, OSError):
        pass
    parts = p.parts
    if "artifacts" in parts:
        tail = Path(*parts[len(parts) - 1 - parts[::-1].index("artifacts"):])
        if (folder / tail).exists():
            return str(tail)
    return path


def split_failure(text: str) -> dict[str, str]:
    """expected / seen / likely cause out of e2e/expect.py's message; empty when it is not one."""
    found: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("E "):  # pytest's traceback marks the exception's lines with "E   "
            line = line[1:].strip()
        key = next((k for k in _FIELDS if line.startswith(k)), None)
        if key:
            current = _FIELDS[key]
            if current in found:  # the message attribute and the traceback repeat it: keep the first
                current = None
                continue
            found[current] = [line[len(key):].strip()]
        elif current and line and not line.startswith(("e2e/", "tests/", "_", ">")) and raw.startswith(" " * 4):
            found[current].append(line)  # a value that wraps onto the next lines
        else:
            current = None
    return {k: " ".join(v).strip() for k, v in found.items()}


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()  # naive: local time, as pytest writes it
    except ValueError:
        return None


def read_junit(path: Path, folder: Path, started: float | None) -> tuple[list[dict], list[dict]]:
    """(passes, tests) of one pytest JUnit file."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return [{"junit": path.name, "name": path.stem, "tests": 0, "failures": 0, "errors": 1, "skipped": 0,
                 "seconds": 0.0, "start": None, "unreadable": True}], []
    passes, tests = [], []
    for suite in [root] if root.tag == "testsuite" else root.findall("testsuite"):
        when = _timestamp(suite.get("timestamp"))
        offset = round(when - started, 1) if when is not None and started is not None else None
        passes.append({"junit": path.name, "name": suite.get("name", path.stem),
                       **{k: int(suite.get(k, 0) or 0) for k in ("tests", "failures", "errors", "skipped")},
                       "seconds": float(suite.get("time", 0) or 0), "start": offset})
        for case in suite.iter("testcase"):
            tests.append(_case(case, path.name, folder))
    return passes, tests


def _case(case: ET.Element, junit: str, folder: Path) -> dict[str, Any]:
    status, message, text = "passed", "", ""
    for tag, word in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        found = case.find(tag)
        if found is not None:
            status, message, text = word, found.get("message", ""), found.text or ""
            break
    out = "\n".join(e.text or "" for e in case.iter("system-out"))
    record: dict[str, Any] = {
        "junit": junit, "classname": case.get("classname", ""), "name": case.get("name", ""), "status": status,
        "seconds": round(float(case.get("time", 0) or 0), 2), "start": None, "message": message.strip(),
        "expected": "", "seen": "", "cause": "", "text": text.strip(),
        "attachments": [relative(p.strip(), folder) for p in _ATTACHMENT.findall(out)]}
    if status in ("failed", "error"):
        record.update(split_failure(message + "\n" + text))
    return record


def _sequential_starts(pass_: dict, tests: list[dict]) -> None:
    # A pass run one test at a time (-n 0) lays its tests end to end from its start; a parallel
    # pass's tests overlap, so they get no place of their own on the timeline.
    if pass_.get("start") is None:
        return
    clock = pass_["start"]
    for test in tests:
        test["start"] = round(clock, 1)
        clock += test["seconds"]


def outages(upgrade: list[dict], gaps: list[dict]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for gap in gaps:
        name = f"{gap.get('step', 'probe')} outage"
        figures[name] = max(figures.get(name, 0.0), float(gap.get("seconds", 0) or 0))
    for rehearsal in upgrade:
        during = rehearsal.get("during")
        if during and len(during) == 2:
            sent, got = during
            figures[f"{rehearsal.get('component')} upgrade outage"] = round((sent - got) * BACKGROUND_INTERVAL, 1)
    return figures


def _stage_starts(stages: list[dict], started: float | None) -> list[dict]:
    clock = 0.0
    for stage in stages:
        if stage.get("start") is None and stage.get("started") and started:
            stage["start"] = round(stage["started"] - started, 1)
        if stage.get("start") is None:  # older reports: stages end to end
            stage["start"] = round(clock, 1)
        clock = stage["start"] + float(stage.get("seconds", 0) or 0)
    return stages


def collect(folder: Path, base: dict[str, Any] | None = None, seen: dict[str, str] | None = None) -> dict[str, Any]:
    """The run JSON of the reports folder: the lifecycle's facts (base, else run.json, else
    timings.json) plus what the files of this run hold (not those in seen: read already)."""
    data = dict(base or read_json(folder / RUN_JSON) or {})
    sources = None if base else data.get("sources")
    if not data:
        timings = read_json(folder / "timings.json") or {}
        data = {"cluster": timings.get("cluster", ""), "provider": timings.get("provider", ""),
                "calico": timings.get("calico", "unknown"), "calico_seen": timings.get("calico_seen", ""),
                "stages": timings.get("stages", []),
                "verdict": "passed" if timings.get("passed") else "failed" if timings else "refused",
                "exit": {"code": 0 if timings.get("passed") else 1,
                         "error": "" if timings else "no run.json or timings.json in this folder"}}
    started = data.get("started")
    data.update(schema=SCHEMA, kind="run")
    data["stages"] = _stage_starts([dict(s) for s in data.get("stages", [])], started)
    for stage in data["stages"]:
        stage["attachments"] = [relative(p, folder) for p in stage.get("attachments", [])]
    passes, tests = [], []
    for xml in sorted(folder.glob("e2e*.xml"), key=lambda p: (p.stat().st_mtime, p.name)):
        if not _fresh(xml, started, sources, seen=seen):
            continue
        p, t = read_junit(xml, folder, started)
        for one in p:
            one["name"] = (data.get("pass_names") or {}).get(xml.name) or one["name"]
            mine = [x for x in t if x["junit"] == xml.name]
            if one["start"] is not None and not _parallel(mine, one):
                _sequential_starts(one, mine)
        passes += p
        tests += t
    data["passes"], data["tests"] = passes, tests
    used = [p["junit"] for p in passes]
    upgrade = read_json(folder / "upgrade.json") if _fresh(folder / "upgrade.json", started, sources, True, seen) \
        else None
    data["upgrade"] = upgrade if isinstance(upgrade, list) else []
    if data["upgrade"]:  # each member's versions before and after, hop by hop
        data["versions"] = dict(data.get("versions") or {})
        data["versions"]["members"] = [
            {k: hop.get(k) for k in ("node", "component", "before", "after", "seconds", "gate")}
            for rehearsal in data["upgrade"] for hop in rehearsal.get("hops", [])]
    drills = read_json(folder / "drills.json") if _fresh(folder / "drills.json", started, sources, True, seen) \
        else None
    data["drills"] = drills if isinstance(drills, list) else []
    used += ["drills.json"] if data["drills"] else []
    doctor = read_json(folder / "doctor.json") if _fresh(folder / "doctor.json", started, sources, True, seen) \
        else None
    data["doctor"] = doctor if isinstance(doctor, dict) else None
    for key, name in (("connectivity", "connectivity.json"), ("probe_gaps", "probes.json"),
                      ("events", "events.json"), ("faults", "faults.json")):
        found = read_json(folder / name) if _fresh(folder / name, started, sources, seen=seen) else None
        data[key] = found if isinstance(found, list) else data.get(key) or []
        used += [name] if isinstance(found, list) else []
    for gap in data["probe_gaps"]:
        if isinstance(gap, dict) and gap.get("start") is None and gap.get("at") is not None and started:
            gap["start"] = round(float(gap["at"]) - started, 1)
    used += [name for name, value in (("upgrade.json", upgrade), ("doctor.json", doctor)) if value]
    if data.get("calico_seen") is None:
        data["calico_seen"] = ""
    data["sources"] = sorted(set(used))
    data["outages"] = outages(data["upgrade"], data["probe_gaps"])
    # The run's own files: what the page was made from and what the lifecycle writes beside it.
    data["files"] = sorted(name for name in {*data["sources"], *OWN_FILES} if (folder / name).is_file())
    return data


def _parallel(tests: list[dict], pass_: dict) -> bool:
    # Under pytest-xdist the tests' durations add up to more than the pass took.
    return sum(t["seconds"] for t in tests) > pass_["seconds"] * 1.05 + 1


def write(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RUN_JSON
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path

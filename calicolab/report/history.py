"""The run history: one JSON line per e2e run (appended when the run ends), and per lane the pass
rate, stage durations and outage figures with P50/P95 over the last N runs; a run outside them
is flagged ("calico upgrade outage 9.8 s vs P95 4.5 s").

The file is the `history_file` setting (docs/settings.md), by default history.jsonl in the
reports folder; a nightly runner keeps it outside the checkout (or caches it) so nights add up.

A lane is the configuration a run tested (provider, versions, TLS, suite), not its name prefix:
the same lane run by a soak, a matrix or a plain e2e lands in the same rows. A run is flagged when
a figure exceeds the P95 of the other runs of its window by more than MARGIN: with only a few
runs the P95 of the others is near their maximum, and stage times on a shared 2-CPU host spread
by about 20 % between identical runs (docs/running.md's soak: 71.7 to 85.5 s), so a smaller excess
would flag noise.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from calicolab.core.config import SETTINGS
from calicolab.core.errors import UserError
from calicolab.core.tables import Column, render

DEFAULT_LAST = 20
MIN_OTHERS = 2  # a P95 of fewer other runs says nothing
MARGIN_SHARE, MARGIN_FLOOR = 0.25, 1.0  # flagged above P95 * 1.25 and above P95 + 1 s


def lane_key(data: dict[str, Any]) -> str:
    lane = data.get("lane") or {}
    asked = (data.get("versions") or {}).get("asked") or {}
    tls = " tls" if str(lane.get("etcd_tls", "")).lower() == "true" else ""
    # A run without the idempotence pass is shorter: compared only with its own kind.
    short = " no-idempotence" if str(lane.get("idempotence", "")).lower() == "false" else ""
    return (f"{lane.get('provider') or data.get('provider', '?')} etcd {asked.get('etcd', '?')} "
            f"docker {asked.get('docker', '?')} calico {asked.get('calico', '?')}{tls} "
            f"suite {lane.get('suite', '?')}{short}")


def entry(data: dict[str, Any], reports: Path) -> dict[str, Any]:
    """The history line of a run JSON (calicolab/report/run_data.py)."""
    tests = data.get("tests", [])
    return {
        "started": data.get("started"), "lane": lane_key(data), "cluster": data.get("cluster", ""),
        "verdict": data.get("verdict", "failed"), "seconds": data.get("seconds"),
        "failed_stage": next((s["name"] for s in data.get("stages", []) if s.get("status") == "failed"), ""),
        # Only stages that passed: a failed stage's duration measures the failure, not the stage.
        "stages": {s["name"]: s["seconds"] for s in data.get("stages", []) if s.get("status") == "passed"},
        "outages": dict(data.get("outages") or {}),
        "tests": {"total": len(tests), "failed": sum(t["status"] in ("failed", "error") for t in tests)},
        "calico": data.get("calico", "unknown"), "reports": str(reports),
    }


def append(path: Path, line: dict[str, Any]) -> None:
    # One write of one line in append mode: lanes of a matrix append side by side safely.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(line, sort_keys=True) + "\n")


def load(path: Path) -> tuple[list[dict[str, Any]], int]:
    """(entries, number of unreadable lines)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"no history at {path}: e2e runs append to it (history_file in cluster.yaml, "
                        f"{SETTINGS['history_file'].env} or --history-file)") from None
    except OSError as err:
        raise UserError(f"cannot read the history {path} ({err.strerror}): check the path") from None
    entries, bad = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(item, dict) and "lane" in item:
            entries.append(item)
        else:
            bad += 1
    return entries, bad


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 2)


def outside(value: float, others: list[float]) -> float | None:
    """The others' P95 when value lies beyond it (by more than the margin), else None."""
    if len(others) < MIN_OTHERS:
        return None
    p95 = percentile(others, 95)
    return p95 if value > max(p95 * (1 + MARGIN_SHARE), p95 + MARGIN_FLOOR) else None


def _when(item: dict[str, Any]) -> str:
    started = item.get("started")
    return datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M") if started else "?"


def summarize(entries: list[dict[str, Any]], last: int = DEFAULT_LAST) -> list[dict[str, Any]]:
    """Per lane (in order of first appearance): runs, passes, and per figure P50/P95/last/flag over
    the lane's last `last` runs; flags name the run, the figure, its value and the others' P95."""
    if last < 1:
        raise UserError(f"--last must be at least 1, not {last}")
    lanes: dict[str, list[dict[str, Any]]] = {}
    for item in sorted(entries, key=lambda e: e.get("started") or 0):
        lanes.setdefault(item["lane"], []).append(item)
    out = []
    for name, runs in lanes.items():
        window = runs[-last:]
        figures, flags = [], []
        for kind, label in (("stages", "stage {}"), ("outages", "{}")):
            names = list(dict.fromkeys(k for r in window for k in (r.get(kind) or {})))
            for fig in names:
                points = [(i, float(r[kind][fig])) for i, r in enumerate(window) if fig in (r.get(kind) or {})]
                values = [v for _, v in points]
                flag = ""
                for i, value in points:
                    p95 = outside(value, [v for j, v in points if j != i])
                    if p95 is not None:
                        text = f"{label.format(fig)} {value:.1f} s vs P95 {p95:.1f} s"
                        flags.append(f"run {_when(window[i])} ({window[i].get('reports', '')}): {text}")
                        if i == len(window) - 1 or not flag:
                            flag = f"{_when(window[i])}: {value:.1f} s"
                figures.append({"name": label.format(fig), "runs": len(values), "p50": percentile(values, 50),
                                "p95": percentile(values, 95), "last": values[-1], "flag": flag})
        for r in window:
            if r.get("verdict") != "passed":
                where = f" at {r['failed_stage']}" if r.get("failed_stage") else ""
                flags.append(f"run {_when(r)} ({r.get('reports', '')}): {r.get('verdict')}{where}")
        passed = sum(r.get("verdict") == "passed" for r in window)
        out.append({"lane": name, "runs": len(window), "passed": passed, "pass_rate": passed / len(window),
                    "figures": figures, "flags": flags})
    return out


def table(lanes: list[dict[str, Any]]) -> str:
    """The summary as text: one table, a lane's pass rate on its first row, then its flags."""
    head = ("lane", "figure", *(Column(n, align="right") for n in ("runs", "P50 s", "P95 s", "last s")), "flag")
    rows = []
    for lane in lanes:
        rows.append((lane["lane"], f"pass rate {lane['passed']}/{lane['runs']} ({lane['pass_rate']:.0%})",
                     str(lane["runs"]), "", "", "", ""))
        rows += [("", f["name"], str(f["runs"]), f"{f['p50']:.1f}", f"{f['p95']:.1f}", f"{f['last']:.1f}",
                  f["flag"]) for f in lane["figures"]]
    lines = [render(head, rows)]
    flags = [f for lane in lanes for f in lane["flags"]]
    lines.append(f"flagged: {len(flags)}" if flags else "flagged: none (every run within the P95 of the others)")
    lines += [f"  {f}" for f in flags]
    return "\n".join(lines)

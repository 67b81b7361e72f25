"""Where the fault pass's time goes, test by test: its waits (calicolab/core/polling.py Waited),
each split into what the cluster needed (until the last poll that found the condition not
there yet), the polls' own time, and idle sleeping while the condition may already have held;
and the time outside waits (making and mending the fault, reading state). e2e/faults writes one
line per test to the reports folder; `invoke bench` sums them per run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from calicolab.core.polling import Waited

TIME_FILE = "fault-time.jsonl"
SUMMED = ("seconds", "waiting", "needed", "polling", "idle", "outside_waits")


def row(test: str, seconds: float, waits: Sequence[Waited]) -> dict:
    outer = [w for w in waits if w.outer]  # nested and background waits overlap the outer ones
    waiting = sum(w.seconds for w in outer)
    slept = sum(w.slept for w in outer)
    return {"test": test, "seconds": round(seconds, 2), "waits": len(outer), "waiting": round(waiting, 2),
            "needed": round(sum(w.needed for w in outer), 2), "polling": round(waiting - slept, 2),
            "idle": round(sum(w.idle for w in outer), 2), "outside_waits": round(seconds - waiting, 2),
            "longest": [[w.what, w.seconds, w.polls] for w in sorted(outer, key=lambda w: -w.seconds)[:3]]}


def line(r: dict) -> str:
    return (f"--- time: {r['seconds']:.1f} s: waits {r['waiting']:.1f} s (cluster needed >= {r['needed']:.1f}, "
            f"polling {r['polling']:.1f}, idle <= {r['idle']:.1f}), outside waits {r['outside_waits']:.1f} s; "
            "longest: " + ", ".join(f"{what} {s:.1f} s ({n} polls)" for what, s, n in r["longest"]))


def clear(folder: Path) -> None:
    """Drop an earlier pass's lines: a run without a fault pass must not report them."""
    (folder / TIME_FILE).unlink(missing_ok=True)


def append(folder: Path, r: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / TIME_FILE).open("a") as out:
        out.write(json.dumps(r) + "\n")


def read(folder: Path) -> list[dict]:
    path = folder / TIME_FILE
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def total(rows: Sequence[dict]) -> dict:
    return {"tests": len(rows), **{k: round(sum(r[k] for r in rows), 2) for k in SUMMED}}

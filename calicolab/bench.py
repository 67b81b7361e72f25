"""`invoke bench`: time the lab lifecycle stage by stage (and the lab's memory), print a
table and write reports/bench.json. Timings live here, not in tests."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from calicolab.config import ClusterConfig
from calicolab.lifecycle import Lifecycle


def mem_available_mib() -> float:
    """Host memory available; its drop from before `up` to after `verify` is what the lab uses
    (node containers run systemd in the host's cgroups, so `docker stats` cannot see it)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_bench(cfg: ClusterConfig, runs: int, say: Callable[[str], None]) -> dict:
    samples: dict[str, list[float]] = {}
    memory: list[float] = []
    totals: list[float] = []
    for i in range(runs):
        say(f"== bench run {i + 1}/{runs}")
        lc = Lifecycle(cfg, say=lambda _m: None)  # quiet: the table is the output
        start = time.monotonic()
        try:
            lc.box()
            before = mem_available_mib()
            lc.up()
            lc.provision()
            lc.provision("idempotence")
            lc.verify()
            memory.append(round(before - mem_available_mib(), 1))
        finally:
            lc.destroy()
            lc.finish()
        totals.append(round(time.monotonic() - start, 1))
        for stage in lc.report.stages:
            samples.setdefault(stage.name, []).append(stage.seconds)
    rows = {name: {"mean": round(statistics.mean(v), 1), "min": min(v), "max": max(v), "runs": len(v)}
            for name, v in samples.items()}
    result = {"provider": cfg.provider, "runs": runs, "stages": rows,
              "total_seconds": {"mean": round(statistics.mean(totals), 1), "min": min(totals),
                                "max": max(totals), "samples": totals},
              "lab_memory_mib": memory}
    say(f"{'stage':<12} {'mean s':>8} {'min s':>8} {'max s':>8}")
    for name, row in rows.items():
        say(f"{name:<12} {row['mean']:>8.1f} {row['min']:>8.1f} {row['max']:>8.1f}")
    tot = result["total_seconds"]
    say(f"{'total':<12} {tot['mean']:>8.1f} {tot['min']:>8.1f} {tot['max']:>8.1f}")
    if memory:
        say(f"lab memory after verify (host MemAvailable drop): mean {statistics.mean(memory):.0f} MiB, "
            f"max {max(memory):.0f} MiB")
    cfg.reports_path.mkdir(parents=True, exist_ok=True)
    (cfg.reports_path / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    say(f"written: {cfg.reports_path / 'bench.json'}")
    return result

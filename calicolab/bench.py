"""`invoke bench`: time the lab lifecycle stage by stage (and the nodes' memory), print a
table and write reports/bench.json. Timings live here, not in tests."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable

from calicolab import shell
from calicolab.config import ClusterConfig
from calicolab.lifecycle import Lifecycle

_UNITS = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}


def node_memory_mib(cfg: ClusterConfig) -> dict[str, float]:
    """Memory of each lab node container (everything inside it: etcd, Docker, calico-node)."""
    out = shell.run(["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"],
                    check=False, timeout=60)
    usage = {}
    for line in out.stdout.splitlines():
        name, _, rest = line.partition(" ")
        m = re.match(r"([\d.]+)\s*([KMG]?i?B)", rest)
        if name.startswith(f"{cfg.prefix}-") and m:
            usage[name] = round(float(m.group(1)) * _UNITS.get(m.group(2), 1), 1)
    return usage


def run_bench(cfg: ClusterConfig, runs: int, say: Callable[[str], None]) -> dict:
    samples: dict[str, list[float]] = {}
    memory: list[dict[str, float]] = []
    totals: list[float] = []
    for i in range(runs):
        say(f"== bench run {i + 1}/{runs}")
        lc = Lifecycle(cfg, say=lambda _m: None)  # quiet: the table is the output
        start = time.monotonic()
        try:
            lc.box()
            lc.up()
            lc.provision()
            lc.provision("idempotence")
            lc.verify()
            memory.append(node_memory_mib(cfg))
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
              "node_memory_mib": memory}
    say(f"{'stage':<12} {'mean s':>8} {'min s':>8} {'max s':>8}")
    for name, row in rows.items():
        say(f"{name:<12} {row['mean']:>8.1f} {row['min']:>8.1f} {row['max']:>8.1f}")
    tot = result["total_seconds"]
    say(f"{'total':<12} {tot['mean']:>8.1f} {tot['min']:>8.1f} {tot['max']:>8.1f}")
    for sample in memory[-1:]:
        say("node memory after verify: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in sample.items()))
    cfg.reports_path.mkdir(parents=True, exist_ok=True)
    (cfg.reports_path / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    say(f"written: {cfg.reports_path / 'bench.json'}")
    return result

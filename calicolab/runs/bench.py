"""`invoke bench`: time the lab lifecycle stage by stage (and the lab's memory), print a
table and write reports/bench.json. Timings live here, not in tests."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from calicolab.core import config, nodes
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.core.state import calico_label
from calicolab.core.tables import Column, render
from calicolab.etcd_history import linearizability
from calicolab.measure import command_log, fault_time
from calicolab.runs import matrix
from calicolab.runs.lifecycle import Lifecycle


def mem_available_mib() -> float:
    """Host memory available; its drop from before `up` to after `verify` is what the lab uses
    (node containers run systemd in the host's cgroups, so `docker stats` cannot see it)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_bench(cfg: ClusterConfig, runs: int, say: Callable[[str], None], suite: str = "checks") -> dict:
    samples: dict[str, list[float]] = {}
    memory: list[float] = []
    totals: list[float] = []
    floors: list[dict] = []
    faults: list[dict] = []
    for i in range(runs):
        say(f"== bench run {i + 1}/{runs}")
        lc = Lifecycle(cfg, say=lambda _m: None)  # quiet: the table is the output
        start = time.monotonic()
        # The read-only pass is measured against its floor: its node commands on their own.
        log = cfg.reports_path / "bench-commands" / f"run{i + 1}" if suite == "read-only" else None
        if log is not None:
            shutil.rmtree(log, ignore_errors=True)
        try:
            lc.box()
            before = mem_available_mib()
            lc.up()
            lc.provision()
            lc.provision("idempotence")
            fault_time.clear(cfg.reports_path)  # a suite without the fault pass reports none
            lc.verify(suite=suite, command_log=log)
            memory.append(round(before - mem_available_mib(), 1))
            if log is not None:
                floors.append(_floor(cfg, lc, log))
            rows = fault_time.read(cfg.reports_path)
            if rows:
                faults.append(fault_time.total(rows))
        finally:
            lc.destroy()
            lc.finish()
        totals.append(round(time.monotonic() - start, 1))
        for stage in lc.report.stages:
            samples.setdefault(stage.name, []).append(stage.seconds)
    rows = {name: {"mean": round(statistics.mean(v), 1), "median": round(statistics.median(v), 1), "min": min(v),
                   "max": max(v), "runs": len(v), "samples": v}
            for name, v in samples.items()}
    result = {"provider": cfg.provider, "calico": calico_label(lc.report.calico), "suite": suite, "runs": runs,
              "stages": rows,
              "total_seconds": {"mean": round(statistics.mean(totals), 1),
                                "median": round(statistics.median(totals), 1), "min": min(totals),
                                "max": max(totals), "samples": totals},
              "lab_memory_mib": memory}
    tot = result["total_seconds"]
    say(render(("stage", *(Column(name, align="right") for name in ("median s", "mean s", "min s", "max s"))),
               [(name, f"{row['median']:.1f}", f"{row['mean']:.1f}", f"{row['min']:.1f}", f"{row['max']:.1f}")
                for name, row in rows.items()],
               footer=[("total", f"{tot['median']:.1f}", f"{tot['mean']:.1f}", f"{tot['min']:.1f}",
                        f"{tot['max']:.1f}")]))
    if memory:
        say(f"lab memory after verify (host MemAvailable drop): mean {statistics.mean(memory):.0f} MiB, "
            f"max {max(memory):.0f} MiB")
    if floors:
        result["read_only_floor"] = {"runs": floors,
                                     "median_ratio": statistics.median(f["ratio"] for f in floors)}
        say(render(("run", *(Column(n, align="right") for n in ("verify s", "floor s", "ratio", "commands"))),
                   [(str(i + 1), f"{f['wall_seconds']:.1f}", f"{f['floor_seconds']:.1f}", f"{f['ratio']:.2f}",
                     str(f["commands"])) for i, f in enumerate(floors)]))
        say("floor: each node's commands of the read-only pass back to back, both nodes at once, no pytest "
            "(commands of the tests that create workloads counted at their time in the pass)")
    if faults:
        result["fault_pass"] = faults
        say(render(("run", *(Column(n, align="right") for n in (
            "fault s", "in waits", "cluster needed", "polling", "idle", "outside waits"))),
            [(str(i + 1), *(f"{f[k]:.1f}" for k in fault_time.SUMMED)) for i, f in enumerate(faults)]))
        say("fault pass: its waits split into what the cluster needed (until the last poll that found the "
            "condition not there yet), the polls' own time and idle sleep (at most, after the condition held); "
            "outside waits: making and mending the faults (per test: fault-time.jsonl in the reports folder)")
    _write(cfg, "bench.json", result, say)
    return result


def _floor(cfg: ClusterConfig, lc: Lifecycle, log: Path) -> dict:
    """The verify stage's wall time against its commands replayed on the same cluster."""
    calls = command_log.read(log)
    if not calls:
        raise UserError(f"the read-only pass recorded no node command under {log}: nothing to measure a floor from")
    wall = next(s.seconds for s in reversed(lc.report.stages) if s.name == "verify")
    made = nodes.from_run(cfg)
    try:
        per_node = command_log.replay(calls, made)
    finally:
        nodes.close_all(made)
    floor = command_log.floor_seconds(per_node)
    return {"wall_seconds": wall, "floor_seconds": floor, "ratio": round(wall / floor, 2) if floor else None,
            "commands": len(calls), "nodes": [{**asdict(f), "seconds": f.seconds} for f in per_node]}


def run_against_lab(cfg: ClusterConfig, say: Callable[[str], None], suite: str = "read-only") -> dict:
    """The VM lane and the lab, one after the other in the same run (same suite, subnet and
    versions where both offer them): per stage the two timings and their ratio
    (reports/bench-vm-vs-lab.json)."""
    if cfg.is_lab:
        raise UserError("bench.against-lab compares a VM provider with the lab: add --provider libvirt (or virtualbox)")
    lab_cfg = config.with_overrides(cfg, provider="docker", prefix=f"{cfg.prefix}-lab"[:31].rstrip("-"),
                                    run_dir=str(cfg.run_path / "lab"), reports_dir=str(cfg.reports_path / "lab"))
    say(f"== VM lane ({cfg.provider}, {cfg.vm_os})")
    vm = run_bench(cfg, 1, say, suite=suite)
    say("== lab (provider docker)")
    lab = run_bench(lab_cfg, 1, say, suite=suite)
    names = list(dict.fromkeys([*vm["stages"], *lab["stages"]]))
    rows = []
    for name in names:
        v, c = vm["stages"].get(name, {}).get("mean"), lab["stages"].get(name, {}).get("mean")
        rows.append((name, f"{c:.1f}" if c is not None else "-", f"{v:.1f}" if v is not None else "-",
                     f"{v / c:.1f}x" if v and c else "-"))
    vt, ct = vm["total_seconds"]["mean"], lab["total_seconds"]["mean"]
    say(render(("stage", *(Column(n, align="right") for n in ("lab s", "vm s", "vm / lab"))), rows,
               footer=[("total", f"{ct:.1f}", f"{vt:.1f}", f"{vt / ct:.1f}x" if ct else "-")]))
    result = {"suite": suite, "vm": vm, "lab": lab, "ratio_total": round(vt / ct, 2) if ct else None}
    _write(cfg, "bench-vm-vs-lab.json", result, say)
    return result


def run_lane_bench(cfg: ClusterConfig, lanes: int, say: Callable[[str], None]) -> dict:
    """One lane alone, then `lanes` identical lanes side by side, in the same run: the ratio of
    wall clocks says what a matrix costs on this machine (reports/bench-lanes.json)."""

    if lanes < 2:
        raise UserError("--lanes needs at least 2 (one lane alone is always measured first)")
    settings = ",".join(f"{k}={v}" for k, v in _lane_settings(cfg).items())
    quiet = lambda _m: None  # noqa: E731 - the table below is the output
    say("== 1 lane alone")
    solo = matrix.run_matrix(cfg, f"name=solo,suite=read-only{settings and ',' + settings}", "always", quiet)
    say(f"== {lanes} lanes side by side")
    spec = ";".join(f"name=lane{i + 1},suite=read-only{settings and ',' + settings}" for i in range(lanes))
    many = matrix.run_matrix(cfg, spec, "always", quiet)
    one = solo[0].seconds
    wall = max(lane.seconds for lane in many)
    result = {"cpus": os.cpu_count(), "calico": calico_label(solo[0].calico), "single_lane_seconds": one,
              "lanes": lanes,
              "parallel_wall_seconds": wall, "ratio": round(wall / one, 2),
              "per_lane_seconds": {lane.name: lane.seconds for lane in many}}
    say(render(("run", Column("seconds", align="right")),
               [("1 lane alone", f"{one:.1f}"), *((f"{lane.name} (side by side)", f"{lane.seconds:.1f}")
                                                  for lane in many)]))
    say(f"{lanes} lanes wall / 1 lane: {result['ratio']:.2f}x on {result['cpus']} CPUs; calico: {result['calico']}")
    _write(cfg, "bench-lanes.json", result, say)
    return result


def _lane_settings(cfg: ClusterConfig) -> dict[str, str]:
    """The versions the bench asked for, passed to every lane."""
    return {"etcd": cfg.versions.etcd, "docker": cfg.versions.docker}


def run_checker_bench(cfg: ClusterConfig, ops: int, keys: int, clients: int, say: Callable[[str], None]) -> dict:
    """The linearizability checker's cost on a synthetic history linearizable by construction
    (calicolab.etcd_history.linearizability.simulate), e.g. 5000 operations over 10 keys by 4
    clients with 2% indeterminate: seconds and search steps (reports/bench-checker.json)."""
    history = linearizability.simulate(ops, keys=keys, clients=clients)
    start = time.monotonic()
    verdict = linearizability.check(history, "v2")
    seconds = round(time.monotonic() - start, 3)
    if not verdict.ok:
        raise UserError(f"the checker refuted a history linearizable by construction:\n{verdict.explain()}")
    steps = sum(k.steps for k in verdict.keys)
    result = {"ops": ops, "keys": keys, "clients": clients,
              "indeterminate": sum(1 for o in history if o.outcome == "info"), "seconds": seconds, "steps": steps,
              "max_key_steps": max(k.steps for k in verdict.keys)}
    say(f"checker: {ops} operations over {keys} keys by {clients} clients ({result['indeterminate']} indeterminate): "
        f"linearizable, {seconds:.3f} s, {steps} search steps")
    _write(cfg, "bench-checker.json", result, say)
    return result


def _write(cfg: ClusterConfig, name: str, result: dict, say: Callable[[str], None]) -> None:
    """The benchmark's JSON under the reports folder, and where it went."""
    cfg.reports_path.mkdir(parents=True, exist_ok=True)
    (cfg.reports_path / name).write_text(json.dumps(result, indent=2) + "\n")
    say(f"written: {cfg.reports_path / name}")

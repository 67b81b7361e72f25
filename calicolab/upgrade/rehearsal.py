"""An upgrade rehearsal: workloads and the etcd keyspace observed around a rolling upgrade.

Before: a workload on every node, pings between them, a snapshot of /calico and /docker.
During: the rolling upgrade (calicolab.upgrade) and, where the workloads keep running, a
background ping that counts what is lost. After: the snapshot again (no key lost or changed
except those the upgrade is expected to rewrite), the old workloads still reach each other,
and new workloads start and reach the old ones.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from calicolab.core import config, state, versions
from calicolab.core import nodes as cluster_nodes
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import StageFailed, UserError
from calicolab.core.remote import Node
from calicolab.core.state import calico_label
from calicolab.core.tables import Column, render
from calicolab.etcd_history import recording
from calicolab.measure import budgets as budget_rules
from calicolab.measure import etcd_leader, step_figures
from calicolab.measure import window as measuring
from calicolab.measure.step_figures import Hop
from calicolab.measure.window import append_probe_gaps, steps_table
from calicolab.stack import disruption, impairments, keyspace, workloads
from calicolab.upgrade import components, drills, hazards
from calicolab.upgrade.components import Component
from calicolab.upgrade.upgrader import Upgrader

NETWORK = "upgnet"
PLANT_SECONDS = 2.0  # the planted blackhole (--plant probe=blackhole): node1 -> node2, as the upgrade starts


@dataclass(frozen=True)
class Endpoint:
    """A running workload's endpoint as Docker reports it (the ids its etcd keys carry)."""

    workload: str
    endpoint_id: str
    network_id: str
    block: str  # its IPAM block, e.g. 192.168.104.0/26


def endpoint_of(w: workloads.Workload) -> Endpoint:
    fmt = "{{range .NetworkSettings.Networks}}{{.EndpointID}} {{.NetworkID}}{{end}}"
    ep, _, net = w.node.run(f"docker inspect -f '{fmt}' {w.name}").stdout.strip().partition(" ")
    return Endpoint(w.name, ep, net, w.block)


def expected_keys(component: Component, snapshot: dict[str, str], restarted: list[Endpoint]) -> keyspace.Expected:
    """What an upgrade of `component` may do to the keyspace, key by key. One that keeps the
    workloads running (etcd, calico-node) must leave every key as it was. One that restarts them
    (Docker's): each old endpoint's Calico and Docker records are deleted (new ones are added), and
    the allocations inside their IPAM blocks are rewritten; the blocks themselves, their
    affinities and all else stay."""
    if component.workloads_keep_running:
        return keyspace.Expected()
    deleted = [k for ep in restarted for k in snapshot
               if k.endswith(f"/workload/libnetwork/libnetwork/endpoint/{ep.endpoint_id}")
               or k == f"/docker/network/v1.0/endpoint/{ep.network_id}/{ep.endpoint_id}"]
    blocks = [f"/calico/ipam/v2/assignment/ipv4/block/{ep.block.replace('/', '-')}" for ep in restarted]
    return keyspace.Expected(may_change=keyspace.exact(*blocks), may_delete=keyspace.exact(*deleted))


@dataclass
class RehearsalResult:
    component: str
    target: str
    hops: list[Hop] = field(default_factory=list)
    hop_table: str = ""
    before: dict[str, str] = field(default_factory=dict)  # /calico and /docker before the upgrade
    after: dict[str, str] = field(default_factory=dict)
    expected: keyspace.Expected = field(default_factory=keyspace.Expected)
    keys: keyspace.KeyDiff = field(default_factory=keyspace.KeyDiff)
    restarted: list[Endpoint] = field(default_factory=list)  # endpoints the upgrade restarts
    pings_before: dict[str, int | None] = field(default_factory=dict)
    pings_after: dict[str, int | None] = field(default_factory=dict)
    pings_new: dict[str, int | None] = field(default_factory=dict)
    during: tuple[int, int] | None = None  # (sent, received) while the upgrade ran
    survivors: dict[str, str] = field(default_factory=dict)  # what must be the same object after
    hazards: list[dict[str, object]] = field(default_factory=list)  # crossed on the path, with check results
    history: recording.HistoryReport | None = None  # etcd clients' history while the upgrade ran
    steps: list[step_figures.StepFigures] = field(default_factory=list)  # the probes' figures, hop by hop
    whole: dict[str, int | None] = field(default_factory=dict)  # figures of the rehearsal as a whole
    budgets: list[budget_rules.Verdict] = field(default_factory=list)
    budget_entry: str = ""  # the budgets file's entry they came from (budgets.choose)
    budget_why: str = ""  # why that entry (budgets.Choice.why)
    probe_raw: str = ""  # the probes', route monitors' and leader watcher's raw records (JSON)
    probe_gaps: list[dict[str, object]] = field(default_factory=list)
    planted: str = ""
    probe_seconds: float = 0.0  # what the probes add to a rehearsal: start, read back, remove
    impairments: list[dict[str, object]] = field(default_factory=list)  # impairments.Applied.to_json
    # BGP sessions dropped in the window, from both nodes' BIRD logs at debug level, each with
    # its shape and lines (parsers.BgpDrop.to_json); sessions_dropped: the collisions among them.
    bgp_drops: list[dict[str, object]] = field(default_factory=list)
    sessions_dropped: list[str] = field(default_factory=list)

    def note_survivor(self, what: str, before: str, after: str) -> None:
        self.survivors[what] = "same" if before == after and before else f"{before or 'none'} -> {after or 'none'}"

    @property
    def problems(self) -> list[str]:
        """What `invoke upgrade` reports; the e2e rehearsal tests grade the observations themselves."""
        found = []
        if not self.keys.clean:
            found.append(f"keyspace: {self.keys.summary()}")
        found += [f"{what} not kept: {how}" for what, how in self.survivors.items() if how != "same"]
        found += [f"hazard {h['id']}: {h['result']}" for h in self.hazards if h.get("result")]
        found += [f"over budget: {v.line()}" for v in self.budgets if not v.ok]
        if self.history is None:
            found.append("no etcd client history was recorded")
        else:
            found += self.history.problems
        for label, pings in (("before", self.pings_before), ("after", self.pings_after),
                             ("new workloads", self.pings_new)):
            failed = [pair for pair, ttl in pings.items() if ttl is None]
            if failed:
                found.append(f"ping {label} failed: {', '.join(failed)}")
        return found

    def summary(self) -> str:
        lines = [f"{self.component} -> {self.target}", self.hop_table,
                 f"keyspace /calico + /docker: {self.keys.summary()}",
                 f"pings before: {self.pings_before}", f"pings after: {self.pings_after}",
                 f"pings from new workloads: {self.pings_new}",
                 f"kept across the upgrade: {self.survivors}"]
        if self.history is not None:
            lines.append(recording.summary(self.history))
            lines.append(render(("api", Column("operations", align="right"), Column("ok", align="right"),
                                 Column("failed", align="right"), Column("indeterminate", align="right"),
                                 "linearizable", Column("lost writes", align="right")),
                                self.history.table_rows()))
        for h in self.hazards:
            lines.append(f"hazard {h['id']}: {'REFUSED' if h['refused'] else h.get('result') or 'check passed'}"
                         if h.get("check") or h["refused"] else f"hazard {h['id']}: noted")
        if self.during:
            sent, got = self.during
            lines.append(f"background ping during the upgrade: {got}/{sent} replies ({sent - got} lost, "
                         f"~{(sent - got) * workloads.BACKGROUND_INTERVAL:.1f} s without traffic)")
        if self.steps:
            lines.append(f"disruption per step (UDP every {disruption.INTERVAL * 1000:.0f} ms both ways, "
                         f"one TCP connection, etcd leader{'; PLANTED: ' + self.planted if self.planted else ''}; "
                         f"the probes took {self.probe_seconds:.1f} s to start, read and remove):")
            lines.append(steps_table(self.steps))
        lines += drop_lines(self.bgp_drops)
        lines += [f"impairment {i['what']} on {', '.join(i['nodes'])} for {i['seconds']} s: {i['dropped']} of "
                  f"{i['seen']} packets dropped" for i in self.impairments]
        if self.budgets:
            over = [v for v in self.budgets if not v.ok]
            lines.append(f"budgets ({self.budget_entry!r} in {self.budgets[0].source}): "
                         f"{len(self.budgets) - len(over)} of "
                         f"{len(self.budgets)} within" + (f"; {self.budget_why}" if self.budget_why else ""))
            lines += [f"  OVER BUDGET: {v.line()}" for v in over]
        return "\n".join(lines)

    def to_json(self, calico: str) -> dict[str, object]:
        return {"component": self.component, "target": self.target, "calico": calico, "problems": self.problems,
                "hops": [asdict(h) for h in self.hops], "keys": asdict(self.keys), "during": self.during,
                "hazards": self.hazards, "history": self.history.to_json() if self.history else None,
                "steps": [s.to_json() for s in self.steps], "whole": self.whole,
                "budgets": [v.to_json() for v in self.budgets], "budget_entry": self.budget_entry,
                "budget_why": self.budget_why, "bgp_drops": self.bgp_drops,
                "probe_raw": self.probe_raw,
                "probe_gaps": self.probe_gaps, "planted": self.planted, "probe_seconds": self.probe_seconds,
                "impairments": self.impairments, "sessions_dropped": self.sessions_dropped}


def drop_lines(drops: list[dict[str, object]]) -> list[str]:
    """Each dropped BGP session with its shape and BIRD's lines (the other end's too)."""
    out = []
    for d in drops:
        kind = f"shape {d['shape']}" if d.get("collision") else "not a collision"
        out.append(f"BGP session dropped: {d['node']}: {d['protocol']} at {d['at']}: {kind} ({d['cause']})")
        out += [f"    {line}" for line in [*d.get("lines", []), *d.get("echo", [])]]  # type: ignore[misc]
    return out


def _pairs(running: list[workloads.Workload]) -> dict[str, int | None]:
    return {f"{a.name}->{b.name}": workloads.ping_ttl(a, b)
            for a, b in itertools.permutations(running, 2) if a.node is not b.node}


def _identities(nodes: list[Node], running: list[workloads.Workload]) -> dict[str, str]:
    """The network's id on every node and each workload container's id and state: an upgrade
    must keep these objects, not recreate them."""
    seen = {f"network {NETWORK} on {n.name}": n.run(
        f"docker network inspect -f '{{{{.Id}}}}' {NETWORK}").stdout.strip() for n in nodes}
    for w in running:
        seen[f"container {w.name}"] = w.node.run(
            f"docker inspect -f '{{{{.Id}}}} {{{{.State.Status}}}}' {w.name}").stdout.strip()
    return seen


def say_hazards(cfg: ClusterConfig, component: str, target: str, say: Callable[[str], None]) -> list[hazards.Hazard]:
    found, lines = hazards.report_lines(component, getattr(cfg.versions, component), target, cfg.install_target)
    for line in lines:
        say(line)
    return found


def rehearse(cfg: ClusterConfig, nodes: list[Node], component: str, target: str,
             say: Callable[[str], None] = print, hazards_said: bool = False,
             budgets: tuple[budget_rules.Budgets, str] | None = None,
             impair: impairments.Impairment | None = None) -> tuple[RehearsalResult, ClusterConfig]:
    """Upgrade one component to target with workloads, keys, disruption probes and an etcd client
    history watched, graded against the budgets; the cluster config after the upgrade comes back
    with the result. With impair, that impairment holds between the nodes for the whole upgrade."""
    budget_set, budget_file = budgets or budget_rules.load(cfg.budgets_path)
    probe_plant = cfg.plants.probe  # test-only plants are options of the task (config.parse_plants)
    if hazards_said:
        found = hazards.report_lines(component, getattr(cfg.versions, component), target, cfg.install_target)[0]
    else:
        found = say_hazards(cfg, component, target, say)
    plant = cfg.plants.history
    entry = components.get(component)
    upgrader = Upgrader(cfg, nodes, say)
    result = RehearsalResult(component, target)
    result.hazards = [{"id": h.id, "what": h.what, "source": h.source, "refused": h.refused, "check": h.check,
                       "result": ""} for h in found]
    for hazard_id, problem in hazards.run_checks(found, cfg, nodes, before=True).items():
        next(h for h in result.hazards if h["id"] == hazard_id)["result"] = problem
        if problem:
            raise StageFailed(f"{component} -> {target}: hazard {hazard_id} applies: {problem}")
    old_names = [f"upg-{n.name}" for n in nodes]
    new_names = [f"upg-new-{n.name}" for n in nodes]
    workloads.remove(nodes, old_names + new_names, NETWORK)  # leftovers of an interrupted run
    probes: list[disruption.Probe] = []
    try:
        workloads.ensure_network(nodes[0], NETWORK)
        old = workloads.start_each(nodes, old_names, NETWORK)
        result.pings_before = _pairs(old)
        identities = _identities(nodes, old)
        # The probes' containers are workloads too: made before the snapshot, restarted by Docker's step.
        started = time.monotonic()
        probes = disruption.start(nodes, [w.block for w in old])
        result.probe_seconds = time.monotonic() - started
        result.before = keyspace.snapshot(nodes[0], cfg.node(nodes[0].name).ip)
        watched = old + [workloads.Workload(p.name, p.node, p.ip) for p in probes]
        result.restarted = [] if entry.workloads_keep_running else [endpoint_of(w) for w in watched]
        result.expected = expected_keys(entry, result.before, result.restarted)
        if entry.workloads_keep_running:
            workloads.start_background_ping(old[0], old[1], seconds=600)
        label = f"{component}-{target}"
        clients = recording.Recording(cfg, cfg.reports_path / "histories", label, plant)
        leaders = etcd_leader.Watcher(clients.endpoints)
        clients.start()
        # The one measured window (faults and drills use it too): route monitors, the leader
        # watch, BIRD at debug with the dropped sessions read from both nodes' logs (for the
        # components whose restarts are what drop sessions), the probes read back over it.
        with measuring.measured(cfg, nodes, probes, leaders=leaders, bgp=entry.watches_bgp, say=say) as seen:
            planted = _plant(probes) if probe_plant else None
            result.planted = f"{PLANT_SECONDS:.0f} s blackhole {probes[0].node.name}->{probes[1].node.name}" \
                if probe_plant else ""
            try:
                with contextlib.ExitStack() as stack:
                    if impair is not None:
                        say(f"    impairment while it runs: {impair.describe()}")
                        applied = stack.enter_context(impairments.held(cfg, nodes, impair))
                    getattr(upgrader, entry.upgrade)(target)
                if impair is not None:
                    result.impairments.append(applied.to_json())
                if entry.workloads_keep_running:  # the ping's window is the upgrade's, as before clients ran
                    result.during = workloads.stop_background_ping(old[0])
            finally:
                if planted is not None:
                    planted.join()
                result.history = clients.stop()
        say(recording.summary(result.history))
        started = time.monotonic()
        assert seen.raw is not None and seen.figures is not None
        result.probe_raw = _save_probe_raw(cfg, label, seen.raw, seen.samples, upgrader.hops, seen.end,
                                           seen.bgp.logs if seen.bgp else {})
        result.steps = seen.build(upgrader.hops)
        result.probe_gaps = step_figures.gap_rows(result.steps, seen.figures)
        append_probe_gaps(cfg, result.probe_gaps)
        result.probe_seconds += time.monotonic() - started
        result.whole = {"icmp_lost": (result.during[0] - result.during[1]) if result.during else None,
                        "lost_acknowledged_writes": len(result.history.lost)}
        judged = measuring.judge(result.steps, entry.step_kind, result.whole, (budget_set, budget_file),
                                 f"{component} -> {target}", impair.key if impair is not None else "", seen.drops)
        result.budgets, result.budget_entry, result.budget_why = judged.verdicts, judged.choice.entry, judged.choice.why
        result.bgp_drops = [d.to_json() for d in seen.drops]
        result.sessions_dropped = [d.describe() for d in seen.drops if d.collision]
        for line in judged.lines() if seen.drops else []:
            say(f"    {line}")
        for hazard_id, problem in hazards.run_checks(found, upgrader.cfg, nodes, before=False).items():
            next(h for h in result.hazards if h["id"] == hazard_id)["result"] = problem
        result.hops, result.hop_table = list(upgrader.hops), upgrader.table()
        for what, after_id in _identities(nodes, old).items():
            result.note_survivor(what, identities.get(what, ""), after_id)
        old = [workloads.refresh(w) for w in old]
        result.pings_after = _pairs(old)
        result.after = keyspace.snapshot(nodes[0], upgrader.cfg.node(nodes[0].name).ip)
        result.keys = keyspace.diff(result.before, result.after, result.expected)
        new = workloads.start_each(nodes, new_names, NETWORK)
        result.pings_new = {k: v for k, v in _pairs(old + new).items() if "upg-new-" in k.split("->")[0]}
    finally:
        started = time.monotonic()
        disruption.stop(probes)
        result.probe_seconds = round(result.probe_seconds + time.monotonic() - started, 1)
        workloads.remove(nodes, old_names + new_names, NETWORK)
    append_report(cfg, result)
    return result, upgrader.cfg


def _plant(probes: list[disruption.Probe]) -> threading.Thread:
    """--plant probe=blackhole: drop node1 -> node2 workload traffic for PLANT_SECONDS as
    the upgrade starts, on a connection of its own; every zero-loss budget must then fail."""
    src, dst = probes
    node = Node(dst.node.target, dst.node.ip)

    def run() -> None:
        try:
            disruption.blackhole(node, dst.name, src.ip, PLANT_SECONDS)
        finally:
            node.close()

    thread = threading.Thread(target=run, daemon=True, name="probe-plant")
    thread.start()
    return thread


def _save_probe_raw(cfg: ClusterConfig, label: str, raw: disruption.Raw, samples: list[etcd_leader.Sample],
                    hops: list[Hop], end: float, bird: dict[str, str] | None = None) -> str:
    """The raw records the step figures are made from, and what both nodes' BIRD logs gained in
    the window: the e2e grading makes the figures and the drops again from this."""
    folder = cfg.reports_path / "probes"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{label}.json"
    path.write_text(json.dumps({"raw": raw.to_json(), "leader": etcd_leader.to_json(samples),
                                "hops": [asdict(h) for h in hops], "end": end, "bird": bird or {}}) + "\n")
    return str(path)


def load_bird_logs(path: str) -> dict[str, str]:
    """The window's BIRD logs (node -> lines) saved with the probes' records; {} when none were."""
    bird = json.loads(Path(path).read_text()).get("bird") or {}
    return {str(k): str(v) for k, v in bird.items()}


def load_probe_raw(path: str) -> tuple[disruption.Raw, list[etcd_leader.Sample], list[Hop], float]:
    data = json.loads(Path(path).read_text())
    return (disruption.Raw.from_json(data["raw"]), etcd_leader.from_json(data["leader"]),
            [Hop(**h) for h in data["hops"]], float(data["end"]))


def append_report(cfg: ClusterConfig, result: RehearsalResult) -> None:
    """Add a rehearsal to reports/upgrade.json (the e2e suite's rehearsals land there too)."""
    path = cfg.reports_path / "upgrade.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = json.loads(path.read_text()) if path.is_file() else []
    except ValueError:
        done = []
    calico = calico_label(state.read(cfg).get("calico_source", "unknown"))
    path.write_text(json.dumps([*done, result.to_json(calico)], indent=2) + "\n")


def run_upgrades(cfg: ClusterConfig, targets: dict[str, str],
                 say: Callable[[str], None] = print, budgets_file: str | None = None) -> list[RehearsalResult]:
    """`invoke upgrade`: rehearse each asked component on the running cluster, in the registry's
    order (components.COMPONENTS); write reports/upgrade.json; fail with the problems found
    (over-budget figures among them)."""
    asked = [(c, targets[c]) for c in components.NAMES if targets.get(c)]
    if not asked:
        flags = [f"--{c}" for c in components.NAMES]
        raise UserError(f"nothing to upgrade: give {', '.join(flags[:-1])} and/or {flags[-1]} with a target version")
    budgets = budget_rules.load(budgets_file or cfg.budgets_path)  # a bad file is refused before anything starts
    for component, target in asked:  # a downgrade is refused before anything is said or done
        if versions.parse(target) < versions.parse(getattr(cfg.versions, component)):
            versions.upgrade_path(component, getattr(cfg.versions, component), target, cfg.install_target)
    for component, target in asked:  # every known hazard on the way, before anything starts
        say_hazards(cfg, component, target, say)
    # The compatibility rules before the cluster is even reached: a refusal needs no nodes.
    config.with_overrides(cfg, versions=replace(cfg.versions, **dict(asked)))
    nodes = list(cluster_nodes.from_run(cfg).values())
    results: list[RehearsalResult] = []
    try:
        for component, target in asked:
            say(f"==> upgrade {component} to {target}")
            result, cfg = rehearse(cfg, nodes, component, target, say, hazards_said=True, budgets=budgets)
            results.append(result)
            say(result.summary())
    finally:
        cluster_nodes.close_all(nodes)
        cfg.reports_path.mkdir(parents=True, exist_ok=True)
        calico = calico_label(state.read(cfg).get("calico_source", "unknown"))
        (cfg.reports_path / "upgrade.json").write_text(
            json.dumps([r.to_json(calico) for r in results], indent=2) + "\n")
    problems = [f"{r.component}: {p}" for r in results for p in r.problems]
    if problems:
        raise StageFailed("; ".join(problems))
    return results


def run_drill(cfg: ClusterConfig, etcd: str | None, rollback: bool,
              say: Callable[[str], None] = print) -> drills.DrillResult:
    """`invoke upgrade.drill --etcd X [--rollback]`: one member a minor ahead, checks and faults
    there, optionally rolled back; reports/drills.json; fails with the problems found."""
    if not etcd:
        raise UserError("a dwell needs an etcd target: give --etcd with a newer version, e.g. --etcd "
                        f"{versions.newest('etcd', cfg.install_target)}")
    drills.next_minor(cfg, etcd)  # a target that is not a minor above is refused before anything runs
    say_hazards(cfg, "etcd", drills.next_minor(cfg, etcd), say)
    nodes = list(cluster_nodes.from_run(cfg).values())
    try:
        result = drills.dwell(cfg, nodes, etcd, rollback=rollback, say=say)
    finally:
        cluster_nodes.close_all(nodes)
    drills.append_report(cfg, result)
    say(result.summary())
    if result.problems:
        raise StageFailed(f"drill {result.name}: " + "; ".join(result.problems))
    return result


def run_restore(cfg: ClusterConfig, say: Callable[[str], None] = print) -> drills.DrillResult:
    """`invoke upgrade.restore`: the disaster drill on the running cluster (it stops etcd on
    every node and removes its data); reports/drills.json; fails with the problems found."""
    nodes = list(cluster_nodes.from_run(cfg).values())
    try:
        result = drills.restore(cfg, nodes, say=say)
    finally:
        cluster_nodes.close_all(nodes)
    drills.append_report(cfg, result)
    say(result.summary())
    if result.problems:
        raise StageFailed("drill restore: " + "; ".join(result.problems))
    return result


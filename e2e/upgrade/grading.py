"""How a rehearsal is graded: against the guide and first principles, from its raw
observations (pings, object ids, the keyspace before and after), never from the verdict the
rehearsal code gives itself. tests/unit/test_rehearsal_grading.py proves it fails on the
broken cases (IPAM wiped, a key rewritten, a lost peer)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from calicolab.core.config import ClusterConfig
from calicolab.etcd_history import operations, recording
from calicolab.measure import budgets as budget_rules
from calicolab.measure import etcd_leader, step_figures
from calicolab.measure import window as measuring
from calicolab.stack import disruption, parsers
from calicolab.upgrade import components
from calicolab.upgrade.rehearsal import RehearsalResult, load_bird_logs, load_probe_raw
from e2e import expect, guide


def grade(result: RehearsalResult, cluster: ClusterConfig) -> None:
    """Grade a rehearsal against the guide and first principles, from its raw observations
    (pings, object ids, the keyspace before and after), not from its own verdict."""
    for label, pings in (("before", result.pings_before), ("after", result.pings_after),
                         ("from new workloads", result.pings_new)):
        expect.true(f"{result.component} rehearsal: pings {label}", len(pings) >= len(cluster.nodes),
                    f"a ping across the nodes for every workload pair ({len(cluster.nodes)} or more)",
                    pings, "the rehearsal ran fewer workloads than nodes")
        expect.equal(f"{result.component} rehearsal: reply TTLs {label}", sorted(set(pings.values()), key=str),
                     [guide.TTL], "a workload lost its peer (None) or the path is not two routed hops")
    expect.equal(f"{result.component} rehearsal: network and containers", {
        what for what, how in result.survivors.items() if how != "same"}, set(),
        f"the upgrade recreated objects it must keep: {result.survivors}")
    before, after = result.before, result.after
    expect.true(f"{result.component} rehearsal: keyspace snapshots", bool(before) and bool(after),
                "/calico and /docker keys before and after", f"{len(before)} / {len(after)} keys",
                "etcd's v2 keyspace could not be read")
    ipam = sorted(k for k in before if k.startswith("/calico/ipam/v2/"))
    expect.equal(f"{result.component} rehearsal: IPAM blocks and affinities kept",
                 [k for k in ipam if k not in after], [],
                 "IPAM data vanished: addresses in those blocks would be handed out twice")
    gone = {ep.endpoint_id for ep in result.restarted}  # restarted workloads get new endpoints
    rewritten = {f"/calico/ipam/v2/assignment/ipv4/block/{ep.block.replace('/', '-')}" for ep in result.restarted}
    own = [k for k in before if k.rsplit("/", 1)[-1] not in gone and k not in rewritten]
    expect.equal(f"{result.component} rehearsal: keys lost or changed",
                 [k for k in own if after.get(k) != before[k]], [],
                 "the upgrade rewrote or dropped etcd data Calico or Docker wrote" +
                 (f" (restarted endpoints exempt: {sorted(gone)})" if gone else ""))


def grade_history(result: RehearsalResult, apis: tuple[str, ...] = ("v2", "v3")) -> None:
    """The etcd clients' history while the upgrade ran, checked again from the raw file (not
    from the rehearsal's own report): both APIs exercised, each linearizable per key, no
    acknowledged write lost, local reads possible, the watches complete and in order. A
    failure carries the offending sub-histories."""
    what = f"{result.component} rehearsal: etcd client history"
    expect.true(f"{what} recorded", result.history is not None and bool(result.history.raw),
                "a history file", result.history, "the clients did not start")
    hist = operations.read_dump(Path(result.history.raw))
    report = recording.evaluate(hist, recording.final_reads(hist))
    for api in apis:
        answered = [op for op in hist.of_api(api) if op.outcome == "ok"]
        expect.true(f"{what}: {api} operations answered", len(answered) >= 20 and any(op.applied for op in answered),
                    "at least 20 answered operations, writes among them", f"{len(answered)}",
                    "the history clients ended early: " + "; ".join(result.history.clients_ended)
                    if result.history.clients_ended else "the clients could not reach etcd's client URLs from the host")
    expect.true(f"{what}: watch events", report.watch_events > 0, "the v2 watches saw the writes",
                report.watch_events, "the watchers never got an event")
    offending = report.failure_text or "(none)"
    for api in apis:
        expect.true(f"{what}: {api} linearizable", report.linearizable.get(api, False),
                    "every read a value a linearizable register could return",
                    f"not linearizable:\n{offending}", "etcd served a stale or lost value during the upgrade")
    expect.equal(f"{what}: acknowledged writes lost", report.lost, [],
                 f"a write etcd acknowledged is gone after the upgrade:\n{offending}")
    expect.equal(f"{what}: local (non-quorum) reads", report.local_reads, [],
                 f"a member served a value nobody wrote or went back:\n{offending}")
    expect.equal(f"{what}: watches see every change in order", report.watch, [],
                 f"a watch missed, reordered or invented a change:\n{offending}")


def grade_budgets(result: RehearsalResult, budgets: tuple[budget_rules.Budgets, str] | None = None) -> None:
    """The disruption figures, made again from the raw records of the probes, route monitors and
    leader watcher (not from the rehearsal's own verdicts), against the budgets file: every
    budgeted figure within its limit, each over-budget one printed as measured vs budget."""
    what = f"{result.component} rehearsal"
    expect.true(f"{what}: disruption probe records", bool(result.probe_raw) and Path(result.probe_raw).is_file(),
                "a raw probe file under reports/probes/", result.probe_raw or "(none)",
                "the probes did not start (image missing from the node?)")
    raw, samples, hops, end = load_probe_raw(result.probe_raw)
    probes = disruption.figures(raw)
    # A probe that never carried traffic would pass every zero-loss budget: both ways must have run.
    carried = {d: f.received for d, f in probes.directions.items()}
    expect.true(f"{what}: probe datagrams both ways", len(carried) == 2 and min(carried.values()) >= 100,
                "at least 100 datagrams received in each direction", carried,
                "the probes could not reach each other across the nodes")
    # Each hop's kind and whether it restarts workloads from the component's entry, not from the
    # rehearsal's own record of its hops.
    component = components.get(result.component)
    hops = [replace(h, kind=component.step_kind, restarts_workloads=component.restarts_workloads) for h in hops]
    figures = step_figures.build(hops, probes, etcd_leader.analyze(samples), end)
    expect.true(f"{what}: etcd leader samples", len(samples) > 0, "the leader watcher polled the members",
                len(samples), "etcd's client URLs are not reachable from the host")
    whole = dict(result.whole)
    if result.history is not None and result.history.raw:
        hist = operations.read_dump(Path(result.history.raw))
        whole["lost_acknowledged_writes"] = len(recording.evaluate(hist, recording.final_reads(hist)).lost)
    if result.during:
        whole["icmp_lost"] = result.during[0] - result.during[1]
    budget_set, source = budgets or budget_rules.load()
    kind = component.step_kind
    impairment = str(result.impairments[0].get("key", "")) if result.impairments else ""
    # The drops told again from the BIRD log lines saved with the probes' records, not from the
    # rehearsal's own list; the entry picked where the faults and the rehearsal pick it.
    drops = parsers.bgp_drops(load_bird_logs(result.probe_raw))
    judged = measuring.judge(figures, kind, whole, (budget_set, source), f"{result.component} -> {result.target}",
                             impairment, drops)
    for line in judged.lines():
        print(f"{what}: {line}")
    used, verdicts = judged.choice.entry, judged.verdicts
    expect.true(f"{what}: budgets apply", bool(verdicts), f"budgets for {kind} in {source}", "none",
                "the budgets file has no entry for this kind of step")
    over = [v for v in verdicts if not v.ok]
    causes = sorted({budget_rules.MEASURES[v.measure].cause for v in over})
    print(f"{what}: {len(verdicts) - len(over)} of {len(verdicts)} budgeted figures within ({used!r} in {source})")
    if over:
        expect.fail(f"{what}: disruption budgets ({source})", "every figure within its budget",
                    "; ".join(f"{v.line()}" for v in over),
                    "; ".join([*causes, *([judged.choice.why] if judged.choice.why else [])]))

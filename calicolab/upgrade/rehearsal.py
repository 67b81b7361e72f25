"""An upgrade rehearsal: workloads and the etcd keyspace observed around a rolling upgrade.

Before: a workload on every node, pings between them, a snapshot of /calico and /docker.
During: the rolling upgrade (calicolab.upgrade) and, where the workloads keep running, a
background ping that counts what is lost. After: the snapshot again (no key lost or changed
except those the upgrade is expected to rewrite), the old workloads still reach each other,
and new workloads start and reach the old ones.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from calicolab.core import config, state
from calicolab.core import nodes as cluster_nodes
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import StageFailed, UserError
from calicolab.core.remote import Node
from calicolab.core.state import calico_label
from calicolab.stack import keyspace, workloads
from calicolab.upgrade.upgrader import Upgrader

NETWORK = "upgnet"
# Keys an upgrade rewrites on purpose. Restarting workloads (the Docker hop stops and starts
# them) gives them new endpoints, addresses and Docker endpoint records.
EXPECTED_CHANGES: dict[str, tuple[str, ...]] = {
    "etcd": (),
    "calico": (),
    "docker": (r"^/calico/v1/host/[^/]+/workload/", r"^/calico/ipam/v2/assignment/",
               r"^/calico/ipam/v2/handle/", r"^/docker/network/v1\.0/endpoint/",
               r"^/docker/network/v1\.0/endpoint_count/"),
}
# Workloads stay up through etcd and calico-node upgrades; Docker's upgrade restarts them.
KEEPS_RUNNING = {"etcd": True, "calico": True, "docker": False}


@dataclass
class RehearsalResult:
    component: str
    target: str
    hops: str = ""
    keys: keyspace.KeyDiff = field(default_factory=keyspace.KeyDiff)
    pings_before: dict[str, int | None] = field(default_factory=dict)
    pings_after: dict[str, int | None] = field(default_factory=dict)
    pings_new: dict[str, int | None] = field(default_factory=dict)
    during: tuple[int, int] | None = None  # (sent, received) while the upgrade ran
    survivors: dict[str, str] = field(default_factory=dict)  # what must be the same object after

    def note_survivor(self, what: str, before: str, after: str) -> None:
        self.survivors[what] = "same" if before == after and before else f"{before or 'none'} -> {after or 'none'}"

    @property
    def problems(self) -> list[str]:
        found = []
        if not self.keys.clean:
            found.append(f"keyspace: {self.keys.summary()}")
        found += [f"{what} not kept: {how}" for what, how in self.survivors.items() if how != "same"]
        for label, pings in (("before", self.pings_before), ("after", self.pings_after),
                             ("new workloads", self.pings_new)):
            failed = [pair for pair, ttl in pings.items() if ttl is None]
            if failed:
                found.append(f"ping {label} failed: {', '.join(failed)}")
        return found

    def summary(self) -> str:
        lines = [f"{self.component} -> {self.target}", self.hops,
                 f"keyspace /calico + /docker: {self.keys.summary()}",
                 f"pings before: {self.pings_before}", f"pings after: {self.pings_after}",
                 f"pings from new workloads: {self.pings_new}",
                 f"kept across the upgrade: {self.survivors}"]
        if self.during:
            sent, got = self.during
            lines.append(f"background ping during the upgrade: {got}/{sent} replies "
                         f"({sent - got} lost, ~{(sent - got) * 0.2:.1f} s without traffic)")
        return "\n".join(lines)


def _pairs(workloads: list[workloads.Workload]) -> dict[str, int | None]:
    return {f"{a.name}->{b.name}": workloads.ping_ttl(a, b)
            for a, b in itertools.permutations(workloads, 2) if a.node is not b.node}


def _identities(nodes: list[Node], workloads: list[workloads.Workload]) -> dict[str, str]:
    """The network's id on every node and each workload container's id and state: an upgrade
    must keep these objects, not recreate them."""
    seen = {f"network {NETWORK} on {n.name}": n.run(
        f"docker network inspect -f '{{{{.Id}}}}' {NETWORK}").stdout.strip() for n in nodes}
    for w in workloads:
        seen[f"container {w.name}"] = w.node.run(
            f"docker inspect -f '{{{{.Id}}}} {{{{.State.Status}}}}' {w.name}").stdout.strip()
    return seen


def rehearse(cfg: ClusterConfig, nodes: list[Node], component: str, target: str,
             say: Callable[[str], None] = print) -> tuple[RehearsalResult, ClusterConfig]:
    """Upgrade one component to target with workloads and keys watched; the cluster config
    after the upgrade comes back with the result."""
    upgrader = Upgrader(cfg, nodes, say)
    result = RehearsalResult(component, target)
    old_names = [f"upg-{n.name}" for n in nodes]
    new_names = [f"upg-new-{n.name}" for n in nodes]
    workloads.remove(nodes, old_names + new_names, NETWORK)  # leftovers of an interrupted run
    try:
        workloads.ensure_network(nodes[0], NETWORK)
        old = [workloads.start(n, name, NETWORK) for n, name in zip(nodes, old_names, strict=True)]
        result.pings_before = _pairs(old)
        identities = _identities(nodes, old)
        before = keyspace.snapshot(nodes[0], cfg.node(nodes[0].name).ip)
        if KEEPS_RUNNING[component]:
            workloads.start_background_ping(old[0], old[1], seconds=600)
        getattr(upgrader, component)(target)
        if KEEPS_RUNNING[component]:
            result.during = workloads.stop_background_ping(old[0])
        result.hops = upgrader.table()
        for what, after_id in _identities(nodes, old).items():
            result.note_survivor(what, identities.get(what, ""), after_id)
        old = [workloads.refresh(w) for w in old]
        result.pings_after = _pairs(old)
        after = keyspace.snapshot(nodes[0], upgrader.cfg.node(nodes[0].name).ip)
        result.keys = keyspace.diff(before, after, EXPECTED_CHANGES[component])
        new = [workloads.start(n, name, NETWORK) for n, name in zip(nodes, new_names, strict=True)]
        result.pings_new = {k: v for k, v in _pairs(old + new).items() if "upg-new-" in k.split("->")[0]}
    finally:
        workloads.remove(nodes, old_names + new_names, NETWORK)
    return result, upgrader.cfg


ORDER = ("etcd", "docker", "calico")  # the store first, then its clients


def run_upgrades(cfg: ClusterConfig, targets: dict[str, str],
                 say: Callable[[str], None] = print) -> list[RehearsalResult]:
    """`invoke upgrade`: rehearse each asked component on the running cluster, in ORDER;
    write reports/upgrade.json; fail with the problems found."""
    asked = [(c, targets[c]) for c in ORDER if targets.get(c)]
    if not asked:
        raise UserError("nothing to upgrade: give --etcd, --docker and/or --calico with a target version")
    # The compatibility rules before the cluster is even reached: a refusal needs no nodes.
    config.with_overrides(cfg, versions=replace(cfg.versions, **dict(asked)))
    nodes = list(cluster_nodes.from_run(cfg).values())
    results: list[RehearsalResult] = []
    try:
        for component, target in asked:
            say(f"==> upgrade {component} to {target}")
            result, cfg = rehearse(cfg, nodes, component, target, say)
            results.append(result)
            say(result.summary())
    finally:
        for node in nodes:
            node.close()
        cfg.reports_path.mkdir(parents=True, exist_ok=True)
        calico = calico_label(state.read(cfg).get("calico_source", "unknown"))
        (cfg.reports_path / "upgrade.json").write_text(json.dumps([
            {"component": r.component, "target": r.target, "calico": calico, "problems": r.problems,
             "hops": r.hops, "keys": vars(r.keys), "during": r.during} for r in results], indent=2) + "\n")
    problems = [f"{r.component}: {p}" for r in results for p in r.problems]
    if problems:
        raise StageFailed("; ".join(problems))
    return results

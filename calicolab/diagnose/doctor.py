"""`invoke doctor`: run the named diagnoses against the cluster of a run folder and print
check, node, result, what was seen, the likely cause and the fix."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from calicolab.core import state
from calicolab.core.config import ClusterConfig, from_effective
from calicolab.core.errors import UserError
from calicolab.core.nodes import cluster_nodes
from calicolab.core.state import calico_label
from calicolab.core.tables import Column, render
from calicolab.diagnose import checks
from calicolab.diagnose.diagnoses import FAIL, PASS, WARN, Finding
from calicolab.diagnose.engine import ClusterView


@dataclass(frozen=True)
class Report:
    cluster: str
    calico: str
    findings: tuple[Finding, ...]

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.result == FAIL]

    def counts(self) -> dict[str, int]:
        return {r: sum(1 for f in self.findings if f.result == r) for r in (PASS, WARN, FAIL)}

    def to_json(self) -> dict[str, object]:
        return {"cluster": self.cluster, "calico": self.calico, "ok": not self.failed,
                "counts": self.counts(), "findings": [f.to_json() for f in self.findings]}


def running_cluster(cfg: ClusterConfig) -> tuple[ClusterConfig, dict]:
    """The configuration and state of the cluster in cfg's run folder, or a UserError when
    none is up there."""
    effective = cfg.run_path / "cluster.json"
    run_state = state.read(cfg)
    if not effective.exists() or not run_state.get("ssh"):
        raise UserError(f"no cluster is up in {cfg.run_path}: bring one up with `invoke up provision` "
                        "(or name its run folder with --run-dir)")
    running = from_effective(effective)
    # An upgrade rehearsal records the versions it moved to; the checks need the live ones.
    live = run_state.get("effective", {}).get("versions", {})
    if live:
        running = replace(running, versions=replace(running.versions, **{
            k: str(v) for k, v in live.items() if k in ("etcd", "docker", "calico", "calicoctl")}))
    return running, run_state


def examine(cfg: ClusterConfig, only: list[str] | None = None) -> Report:
    running, run_state = running_cluster(cfg)
    nodes = cluster_nodes(running, run_state.get("ssh"), patience=10)
    try:
        findings = checks.run(ClusterView(running, dict(nodes)), only)
    finally:
        for node in nodes.values():
            node.close()
    if findings and all(f.check == "SSH" for f in findings):
        raise UserError(f"no cluster is up in {cfg.run_path}: no node answers over SSH "
                        "(bring it up with `invoke up provision`)")
    return Report(running.prefix, run_state.get("calico_source", "unknown"), tuple(findings))


COLUMNS = ("check", "node", "result", "seen", "likely cause", "fix")


def table(findings: tuple[Finding, ...] | list[Finding]) -> str:
    # Cause and fix are prose (often 100+ characters): padding the cause would push every fix off
    # the screen, so both share the last column, which is never padded. Passing rows leave it empty.
    head = (*COLUMNS[:3], Column(COLUMNS[3], max_width=60), f"{COLUMNS[4]}  |  {COLUMNS[5]}")
    rows = [(f.check, f.node, f.result, f.seen,
             f"{f.diagnosis.placed()}  |  {f.diagnosis.fix}" if f.diagnosis else "") for f in findings]
    return render(head, rows)


def run_doctor(cfg: ClusterConfig, json_path: str | None = None, only: list[str] | None = None,
               say: Callable[[str], None] = print) -> Report:
    report = examine(cfg, only)
    say(f"doctor: cluster {report.cluster} ({cfg.run_path}), calico: {calico_label(report.calico)}")
    say(table(report.findings))
    counts = report.counts()
    say(f"{counts[PASS]} passed, {counts[WARN]} warnings, {counts[FAIL]} failed")
    if json_path:
        target = Path(json_path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        except OSError as err:
            raise UserError(f"cannot write {target} ({err.strerror}): pick another --json path") from None
        say(f"json: {target}")
    return report

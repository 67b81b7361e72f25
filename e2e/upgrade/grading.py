"""How a rehearsal is graded: against the guide and first principles, from its raw
observations (pings, object ids, the keyspace before and after), never from the verdict the
rehearsal code gives itself. tests/unit/test_rehearsal_grading.py proves it fails on the
broken cases (IPAM wiped, a key rewritten, a lost peer)."""

from __future__ import annotations

from calicolab.core.config import ClusterConfig
from calicolab.upgrade.rehearsal import RehearsalResult
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

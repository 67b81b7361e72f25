"""The half-upgraded etcd cluster, rehearsed (`invoke upgrade.drill --etcd X --rollback` does
the same): one member a minor ahead, the checks there, each member killed in turn, the
member rolled back. Runs before the rolling upgrades (this file sorts first), on a cluster
brought up at an old etcd (e.g. invoke e2e --suite upgrade --etcd 3.3.25 --docker 20.10.5)."""

from __future__ import annotations

import json

import pytest

from calicolab.core import config, versions
from calicolab.upgrade import drills
from e2e import expect, guide
from e2e.upgrade.grading import grade_history

pytestmark = [pytest.mark.upgrade]
PARTITION_S = 8.0  # from the moment the upgraded member answers: it rejoins into the partition


def _check(result: drills.DrillResult, what: str) -> drills.Check:
    found = [c for c in result.checks if c.what.startswith(what)]
    expect.true(f"the drill observed '{what}'", len(found) == 1, "one observation", len(found),
                "the drill skipped a step")
    return found[0]


def test_etcd_dwell_in_mixed_versions_then_rollback(cluster_json, nodes, cluster):
    cfg = config.with_plants(config.from_effective(cluster_json), cluster.plants)  # --plant history=...
    ordered = [nodes[n.name] for n in cluster.nodes]
    old, target = cfg.versions.etcd, versions.newest("etcd", cfg.install_target)
    if guide.minor(old) == guide.minor(target):
        pytest.skip(f"etcd {old} has no newer minor on this provider: bring the cluster up at an older etcd "
                    "(e.g. invoke e2e --suite upgrade --etcd 3.3.25 --docker 20.10.5)")
    # etcd's peer port partitioned between the nodes for the first seconds of the member's upgrade
    result = drills.dwell(cfg, ordered, target, rollback=True, say=print, partition_s=PARTITION_S)
    drills.append_report(cfg, result)
    print(result.summary())
    new = json.loads(_check(result, "members' versions in the dwell").seen)
    first, rest = ordered[0].name, [n.name for n in ordered[1:]]
    # From first principles: the first member on the next minor, the others where they were.
    expect.equal("the first member's minor in the dwell", guide.minor(new[first]), guide.minors_between(old, target)[0],
                 "the dwell did not move one minor")
    expect.equal("the other members in the dwell", {n: new[n] for n in rest}, {n: old for n in rest},
                 "the dwell touched a member it must leave")
    # A mixed cluster runs at the lowest common version (etcd's upgrade guides).
    major, minor = versions.parse(old)[:2]
    expect.equal("cluster version in the dwell", _check(result, "cluster version in the dwell").seen,
                 f"{major}.{minor}.0", "the cluster version moved before the last member upgraded")
    expect.equal("BGP in the dwell", _check(result, "BGP mesh in the dwell").seen, "Established on every node",
                 "calico-node lost its peers while etcd ran mixed versions")
    expect.equal("faults in the dwell (each member killed once)", [f.what for f in result.faults],
                 [f"etcd on {n} killed" for n in [*rest, first]], "a member was not killed")
    expect.equal("members after the rollback", json.loads(_check(result, "members' versions after the rollback").seen),
                 {n.name: old for n in ordered}, "the rollback did not bring the member back")
    expect.equal("cluster version after the rollback", _check(result, "cluster version after the rollback").seen,
                 f"{major}.{minor}.0", "the rollback moved the cluster version")
    # etcd is not on the data path and the drill rewrites nothing: every key and value as before.
    expect.true("keyspace snapshots", bool(result.before), "the /calico and /docker keys", len(result.before),
                "etcd's v2 keyspace could not be read")
    expect.equal("keys lost or changed across the dwell and rollback",
                 sorted(k for k in result.before if result.after.get(k) != result.before[k]), [],
                 "etcd lost or rewrote data Calico or Docker wrote")
    sent, got = result.during or (0, 0)
    # Nothing in the dwell touches the data path. One reply of slack (CI saw 184 of 186 and 232 of
    # 233 before the count began only once the new workloads answered, and before replies still in
    # flight at the stop were left out).
    expect.true("background ping across the drill", sent > 0 and sent - got <= 1, "every reply but at most 1",
                f"{got}/{sent}", "routes were withdrawn: calico-node lost etcd and restarted?")
    expect.equal("reply TTLs at the end (old and new workloads)", sorted(set(result.pings.values()), key=str),
                 [guide.TTL], "a workload lost its peer (None) or the path is not two routed hops")
    addresses = _check(result, "every workload's address handed out once")
    expect.equal("distinct workload addresses", addresses.seen, addresses.expected,
                 "IPAM handed an address out twice after the rollback")
    cut = _check(result, "the peer-port partition dropped packets")
    expect.equal("the peer-port partition bit", cut.seen, "yes", "the DROP rules matched nothing on 2380")
    grade_history(result)

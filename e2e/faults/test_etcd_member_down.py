"""Fault: one etcd member stopped. The checks name it, the cluster reports itself degraded,
and once the member is back every member serves a key written before, with /calico intact."""

from __future__ import annotations

import uuid

import pytest

from calicolab.diagnose import etcd as diag_etcd
from calicolab.stack import etcd_query, etcd_stop
from e2e import expect
from e2e.faults.fault_kit import BASELINE_DEADLINE, ETCD_DEADLINE, calico_keys, detect, healthy, same_keys

pytestmark = [pytest.mark.disruptive]

ETCD_CHECKS = ("etcd member", "etcd cluster")


def test_stopped_etcd_member_is_named_and_the_cluster_heals(view, cluster, nodes):
    healthy(view, ETCD_CHECKS, "before: etcd healthy", BASELINE_DEADLINE)
    first, victim = cluster.nodes[0], cluster.nodes[1]
    writer = nodes[first.name]
    key, value = f"/calicolab-fault/{uuid.uuid4().hex}", uuid.uuid4().hex
    expect.command_ok(etcd_query.v2_put(writer, first.ip, key, value), "etcd's v2 API does not take writes")
    before = calico_keys(writer)
    try:
        try:
            etcd_stop.stop(nodes[victim.name])
            finding = detect(view, ETCD_CHECKS, {"etcd member down"}, [victim.name])
            verdict, _ = diag_etcd.cluster_verdict(view)
            print(f"cluster reported: {verdict}")
            expect.true("etcd cluster verdict with one member stopped", verdict.startswith("degraded")
                        and victim.name in verdict, f"degraded: {victim.name} down", verdict,
                        finding.diagnosis.text())
        finally:
            nodes[victim.name].run("systemctl start etcd", timeout=120)
        healthy(view, ETCD_CHECKS, "after: etcd healthy again", ETCD_DEADLINE)
        for spec in cluster.nodes:
            expect.equal(f"{key} read through {spec.name} after the restart",
                         etcd_query.v2_get(nodes[spec.name], spec.ip, key), value,
                         "the key written before the fault is gone")
        same_keys(before, calico_keys(writer))
    finally:
        etcd_query.v2_delete(writer, first.ip, key)

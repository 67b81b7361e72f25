"""Fault: calico-node (re)started while etcd cannot be reached (the guide's failure mode).
The unit fails, stays failed once etcd is back, the checks name it, and reset-failed plus
start brings BGP and the workloads back."""

from __future__ import annotations

import pytest

from calicolab.core.polling import wait_for
from calicolab.stack import probes
from e2e import expect
from e2e.faults.fault_kit import BASELINE_DEADLINE, BGP_CHECKS, BGP_DEADLINE, DETECT_DEADLINE, RULE_TAG, detect, healthy

pytestmark = [pytest.mark.disruptive]


def _etcd_reject_rule() -> str:
    return f"OUTPUT -p tcp --dport 2379 -m comment --comment {RULE_TAG} -j REJECT --reject-with tcp-reset"


def test_calico_node_started_before_etcd_fails_its_unit_until_restarted(view, cluster, nodes, traffic):
    """The guide's failure mode: calico-node (re)started while etcd cannot be reached exits at
    once (calico/node v2.6.1 has no datastore wait by default); Restart=on-failure with
    StartLimitBurst=3 leaves the unit failed, and it stays failed after etcd is back."""
    healthy(view, BGP_CHECKS, "before: BGP Established", BASELINE_DEADLINE)
    spec = cluster.nodes[1]
    victim = nodes[spec.name]
    rule = _etcd_reject_rule()
    try:
        victim.run(f"iptables -w -I {rule}", check=True)
        victim.run("systemctl --no-block restart calico-node", check=True)
        state = wait_for(lambda: probes.unit_state(victim, "calico-node"), lambda st: st == "failed",
                         f"{spec.name}: calico-node.service failed", timeout=DETECT_DEADLINE, interval=0.5)
        log = victim.run("docker logs calico-node 2>&1").stdout
        print(f"calico-node on {spec.name}: unit {state}; log: {log.strip().splitlines()[-4:]}")
        expect.true(f"{spec.name}: calico-node's log", "Unable to access datastore to query node configuration"
                    in log, "ERROR: Unable to access datastore to query node configuration", log[-300:],
                    "calico-node waited for etcd instead of exiting (calico/node 2.6.1 exits at once)")
        victim.run(f"iptables -w -D {rule}", check=True)
        finding = detect(view, ("calico-node",), {"calico-node started before etcd"}, [spec.name])
        expect.equal(f"{spec.name}: calico-node.service once etcd is reachable again",
                     probes.unit_state(victim, "calico-node"), "failed",
                     finding.diagnosis.text() + " (StartLimitBurst=3 was reached)")
    finally:
        victim.run(f"iptables -w -D {rule} 2>/dev/null")
        victim.run("systemctl reset-failed calico-node; systemctl start calico-node", timeout=120)
    healthy(view, BGP_CHECKS, "after reset-failed and start: BGP Established", BGP_DEADLINE)
    traffic.ping()

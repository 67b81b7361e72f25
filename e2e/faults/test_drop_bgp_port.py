"""Fault: TCP 179 from the peer dropped by iptables, then calico-node restarted. The BGP mesh
check names it from the session's unanswered SYNs, the firewall check from the rule itself,
and BGP comes back once the rule is gone."""

from __future__ import annotations

import pytest

from calicolab.core.polling import wait_for
from calicolab.stack import probes
from e2e import expect
from e2e.faults.fault_kit import (
    BASELINE_DEADLINE,
    BGP_CHECKS,
    BGP_DEADLINE,
    RULE_TAG,
    bgp_drop_rules,
    detect,
    healthy,
)

pytestmark = [pytest.mark.disruptive]


def test_dropped_bgp_port_is_named_and_bgp_comes_back(view, cluster, nodes, traffic):
    healthy(view, ("BGP mesh", "BGP port 179"), "before: BGP Established, port open", BASELINE_DEADLINE)
    spec, peer = cluster.nodes[1], cluster.nodes[0]
    victim = nodes[spec.name]
    rules = bgp_drop_rules(peer.ip)
    try:
        for rule in rules:
            victim.run(f"iptables -w -I {rule}", check=True)
        print(f"{spec.name}: " + "; ".join(f"iptables -I {r}" for r in rules))
        # BIRD's hold time keeps an established session alive for a while; a restart makes both
        # sides reconnect through the DROP at once.
        victim.run("systemctl restart calico-node", check=True, timeout=120)
        # Told from what the session meets (SYNs unanswered while ping answers), not from the rule.
        finding = detect(view, ("BGP mesh",), {"BGP port blocked"}, [spec.name, spec.ip])
        expect.true("the evidence of the BGP port diagnosis", "SYN unanswered" in finding.diagnosis.where,
                    "SYN to TCP 179 unanswered, seen in a kernel's socket table", finding.diagnosis.where,
                    "the diagnosis was not made from the session's own view")
        # The firewall check reads the rule back from iptables-save as the kernel prints it.
        rule_found = detect(view, ("BGP port 179",), {"BGP port blocked"}, [spec.name])
        expect.true("the firewall check's rule", RULE_TAG in rule_found.diagnosis.where,
                    f"the rule tagged {RULE_TAG}", rule_found.diagnosis.where, "iptables-save parsing missed it")
        # From the outside the DROP looks like silence, not a refusal (what the probe path tells).
        seen = probes.tcp_port(nodes[peer.name], spec.ip, 179)
        print(f"probe: {peer.name} -> {spec.ip}:179 {seen}")
        expect.equal(f"TCP 179 from {peer.name} to {spec.name}", seen, probes.TIMEOUT,
                     "the DROP rule is not in the path of the BGP connection")
    finally:
        for rule in rules:
            wait_for(lambda rule=rule: victim.run(f"iptables -w -D {rule} 2>/dev/null").ok, lambda ok: not ok,
                     f"remove {rule}", timeout=30)
    healthy(view, ("BGP mesh", "BGP port 179", *BGP_CHECKS), "after: rule removed, BGP Established",
            BGP_DEADLINE)
    traffic.ping()

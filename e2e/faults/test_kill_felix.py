"""Fault: `kill -9` of felix inside calico-node. The checks name it, runit restarts felix
alone (BIRD keeps its pid, BGP stays up), within the budgets entry `felix-kill`."""

from __future__ import annotations

import pytest

from e2e import expect
from e2e.faults.fault_kit import (
    BASELINE_DEADLINE,
    BGP_CHECKS,
    BGP_DEADLINE,
    birds,
    detect,
    healthy,
    judged,
    processes,
    settled_long_enough,
)

pytestmark = [pytest.mark.disruptive]


def test_killed_felix_restarts_alone_and_bgp_stays_up(view, cluster, nodes, traffic, disruption_probes):
    healthy(view, ("felix", *BGP_CHECKS), "before: felix running, BGP Established", BASELINE_DEADLINE)
    victim = nodes[cluster.nodes[1].name]
    settled_long_enough(victim)
    felixes, birds_before = processes(victim, "calico-felix"), birds(victim)
    expect.true(f"{victim.name}: calico-felix inside calico-node", bool(felixes), "a calico-felix process",
                "none", "calico-node runs without felix")
    old, bird_pids = felixes[0].pid, sorted(p.pid for p in birds_before)
    try:
        with disruption_probes.window("felix-kill", victim.name, f"kill -9 felix on {victim.name}") as measured:
            victim.run(f"kill -9 {old}", check=True)
            print(f"killed calico-felix (pid {old}) inside calico-node on {victim.name}")
            detect(view, ("felix",), {"felix down", "felix restarted"}, [victim.name])
            healthy(view, ("felix", *BGP_CHECKS), "after: felix back, BGP Established", BGP_DEADLINE)
        judged(measured)
        new = [p.pid for p in processes(victim, "calico-felix")]
        expect.true(f"{victim.name}: a new calico-felix", bool(new) and old not in new, f"not pid {old}", new,
                    "runit did not restart felix")
        expect.equal(f"{victim.name}: BIRD pids after felix died", sorted(p.pid for p in birds(victim)),
                     bird_pids, "a felix death restarted more than felix: the services are not supervised "
                     "one by one (runit restarts only the service that exited)")
        traffic.ping()
    finally:
        if not processes(victim, "calico-felix"):
            victim.run("systemctl restart calico-node", timeout=120)

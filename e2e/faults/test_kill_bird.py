"""Fault: `kill -9` of BIRD inside calico-node. The checks name it, runit starts a new BIRD,
graceful restart keeps the routes meanwhile, and the disruption stays within the budgets
entry `bird-kill` (or `bird-kill under bgp-collision` when the window saw only collisions).
The fault plant (conftest.py `fault_plant`) adds a BGP drop or a Cease the test must judge."""

from __future__ import annotations

import contextlib
import shlex
import time

import pytest

from calicolab.core.remote import Node
from calicolab.measure import bgp_watch
from calicolab.stack import probes, workloads
from e2e import expect
from e2e.faults.fault_kit import (
    BASELINE_DEADLINE,
    BGP_CHECKS,
    BGP_DEADLINE,
    Traffic,
    bgp_drop_rules,
    birds,
    detect,
    healthy,
    judged,
    settled_long_enough,
)

pytestmark = [pytest.mark.disruptive]


def _restart_protocol(node: Node, protocol: str) -> None:
    """BIRD's own `restart <protocol>` (birdcl in calico/node, birdc in the double)."""
    ask = (f"for c in birdcl birdc; do command -v $c >/dev/null && exec $c -s {probes.BIRD_CTL} restart {protocol}; "
           "done; exit 127")
    res = node.run(f"docker exec calico-node sh -c {shlex.quote(ask)}", timeout=30)
    print(f"PLANTED: `restart {protocol}` in BIRD on {node.name}: {res.stdout.strip() or res.stderr.strip()}")


@contextlib.contextmanager
def _bgp_dropped(victim: Node, peer_ip: str, seconds: float):
    """TCP 179 from the peer dropped on the victim for `seconds` (both directions of the session),
    removed after that time by a timer on the node itself, and in any case on leaving."""
    rules = bgp_drop_rules(peer_ip)
    add = "; ".join(f"iptables -w -I {r}" for r in rules)
    delete = "; ".join(f"iptables -w -D {r} 2>/dev/null" for r in rules)
    victim.run(f"{add}; (sleep {seconds:g}; {delete}) >/dev/null 2>&1 </dev/null &", check=True)
    print(f"PLANTED: TCP 179 from {peer_ip} dropped on {victim.name} for {seconds:g} s")
    try:
        yield
    finally:
        victim.run(delete)


def _lost(traffic: Traffic, seconds: int, action) -> tuple[int, int]:
    """(sent, lost) of a background ping a -> b at BACKGROUND_INTERVAL while `action` runs."""
    workloads.start_background_ping(traffic.a, traffic.b, seconds)
    try:
        action()
    finally:
        sent, got = workloads.stop_background_ping(traffic.a)
    return sent, sent - got


def test_killed_bird_is_named_and_graceful_restart_keeps_traffic(view, cluster, nodes, traffic, disruption_probes,
                                                                 fault_plant):
    healthy(view, BGP_CHECKS, "before: BGP Established", BASELINE_DEADLINE)
    victim = nodes[cluster.nodes[0].name]
    settled_long_enough(victim)
    found = birds(victim)
    expect.true(f"{victim.name}: bird inside calico-node", bool(found), "a bird process", "none",
                "calico-node runs without BIRD")
    old = found[0].pid
    timing: dict[str, float] = {}
    peer = nodes[cluster.nodes[1].name]
    plant, seconds = fault_plant
    query = float(cluster.plants.bgp_query or 0)  # --plant bgp-query=SECONDS: lab evidence

    def kill_and_recover() -> None:
        with contextlib.ExitStack() as stack:
            if query > 0:  # lab evidence: both BIRDs asked every `query` s, as the checks' calls do
                asker = bgp_watch.Querier([victim, peer], query)
                # Registered first, so it runs after the querier has stopped and counted.
                stack.callback(lambda: print(f"both BIRDs queried every {query:g} s: {asker.asked} questions"))
                stack.enter_context(asker)
            if plant == "bgp-drop":
                stack.enter_context(_bgp_dropped(victim, cluster.nodes[1].ip, seconds))
            victim.run(f"kill -9 {old}", check=True)
            began = time.monotonic()
            print(f"killed bird (pid {old}) inside calico-node on {victim.name}")
            detect(view, ("BIRD",), {"BIRD down", "BIRD restarted"}, [victim.name])
            healthy(view, BGP_CHECKS, "after: BGP Established again", BGP_DEADLINE)
            timing["established"] = time.monotonic() - began
            if plant == "bgp-cease":
                _restart_protocol(peer, "Mesh_" + cluster.nodes[0].ip.replace(".", "_"))
                healthy(view, BGP_CHECKS, "after the planted Cease: BGP Established again", BGP_DEADLINE)

    try:
        # BIRD at debug for the window; each BGP session dropped in it is told from both nodes'
        # BIRD logs: only connection collisions (Calico 2.6's, fixed in 3.4) move the judgement
        # to `bird-kill under bgp-collision`, per drop; any other drop keeps the strict entry.
        with disruption_probes.window("bird-kill", victim.name, f"kill -9 bird on {victim.name}") as measured:
            sent, lost = _lost(traffic, 120, kill_and_recover)
            # ICMP is the second signal, held to the same entry (budgets.yaml: icmp_lost) as the probes.
            measured.whole["icmp_lost"] = lost
        expect.true("background ping during the kill", sent > 0, "pings sent", sent, "the workload's ping did not run")
        print(f"MEASURED: kill -9 bird on {victim.name}: {lost} of {sent} pings lost "
              f"({lost * workloads.BACKGROUND_INTERVAL:.1f} s), BGP Established again after "
              f"{timing.get('established', float('nan')):.1f} s; BGP drops: "
              f"{', '.join(f'shape {d.shape}' for d in measured.drops) or 'none'}")
        judged(measured)
        new = [p.pid for p in birds(victim)]
        expect.true(f"{victim.name}: a new bird process", bool(new) and old not in new, f"not pid {old}", new,
                    "BIRD was not restarted inside calico-node")
        traffic.ping()
    finally:
        if not birds(victim):  # calico-node's supervisor did not bring it back: restart the unit
            victim.run("systemctl restart calico-node", timeout=120)

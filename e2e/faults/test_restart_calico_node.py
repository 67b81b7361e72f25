"""Fault: `systemctl restart calico-node`. The checks see the restart (calico-node or BIRD
down, the peer not listening, or a new BGP session), and BGP and the workloads recover."""

from __future__ import annotations

import contextlib

import pytest

from calicolab.core.polling import Timeout, wait_for
from calicolab.core.remote import Node
from calicolab.stack import probes
from e2e import expect
from e2e.faults.fault_kit import BASELINE_DEADLINE, BGP_CHECKS, BGP_DEADLINE, detect, healthy

pytestmark = [pytest.mark.disruptive]


def _started_at(node: Node) -> str:
    return node.run("docker inspect -f '{{.State.StartedAt}}' calico-node").stdout.strip()


def test_restarted_calico_node_is_named_and_bgp_and_workloads_recover(view, cluster, nodes, traffic):
    before = healthy(view, BGP_CHECKS, "before: BGP Established", BASELINE_DEADLINE)
    spec = cluster.nodes[1]
    victim = nodes[spec.name]
    started = _started_at(victim)
    try:
        # --no-block: the checks watch the restart while it happens instead of after it. The
        # restart can be over within one round of checks (2 s here); the new BGP session's SINCE
        # still tells it afterwards.
        victim.run("systemctl --no-block restart calico-node", check=True)
        detect(view, BGP_CHECKS, {"calico-node down", "BIRD down", "BGP peer not listening", "BGP session new"},
               [spec.name, spec.ip], before=before)
    finally:
        # A unit stuck in a transition is started below either way; recovery reports the rest.
        with contextlib.suppress(Timeout):
            wait_for(lambda: probes.unit_state(victim, "calico-node"),
                     lambda s: s not in ("activating", "deactivating"), "calico-node settles", timeout=120)
        if probes.unit_state(victim, "calico-node") != "active":
            victim.run("systemctl start calico-node", timeout=120)
    healthy(view, BGP_CHECKS, "after: BGP Established again", BGP_DEADLINE)
    expect.true(f"{spec.name}: calico-node container", _started_at(victim) != started,
                f"started after {started}", _started_at(victim), "the unit was not restarted")
    traffic.ping()

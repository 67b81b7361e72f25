"""Fault: etcd's v2 API switched off on every member (Calico 2.6 and Docker's cluster store
speak only v2). The checks name it from etcd's 404; once it is back, calicoctl lists every
node, a new calico network is shared between the nodes, and /calico is intact."""

from __future__ import annotations

import shlex
import uuid

import pytest

from calicolab.core import node_commands, versions
from calicolab.core.polling import Timeout, wait_for
from calicolab.core.remote import Node, in_parallel
from calicolab.stack import etcd_stop
from e2e import expect
from e2e.faults.fault_kit import (
    BASELINE_DEADLINE,
    ETCD_DEADLINE,
    RULE_TAG,
    calico_keys,
    detect,
    healthy,
    same_keys,
)

pytestmark = [pytest.mark.disruptive]

ETCD_CONF = "/etc/etcd/etcd.conf"
V2_CHECKS = ("etcd v2 API", "docker cluster store")
AFTER_V2 = ("etcd cluster", *V2_CHECKS, "calico-node", "BGP mesh", "BGP address", "calico networks shared")


def _restart_etcd_together(nodes: dict[str, Node]) -> None:
    # Stopped one after another: a leader stopping while its peer also stops tries to hand its
    # leadership to that peer and waits out etcd's request timeout (5 s + 2 election timeouts;
    # etcdserver TransferLeadership, logged "failed to transfer leadership"): 8 s a restart here.
    # Stopped alone it hands over at once, and the last member has no peer left to wait for.
    for node in nodes.values():
        etcd_stop.stop(node)
    # Started at once: one member alone waits for quorum (the guide's `publish error`).
    in_parallel(list(nodes.values()), lambda n: n.run("systemctl start etcd", check=True, timeout=150))


def test_disabled_v2_api_is_named_and_calico_and_docker_recover(view, cluster, nodes):
    healthy(view, ("etcd cluster", *V2_CHECKS), "before: v2 API served", BASELINE_DEADLINE)
    first, second = nodes[cluster.nodes[0].name], nodes[cluster.nodes[1].name]
    before = calico_keys(first)
    backup = f"{ETCD_CONF}.{RULE_TAG}"
    # etcd 3.3 serves v2 without the flag, so there the fault has to say false explicitly.
    off = "" if versions.etcd_needs_v2_flag(cluster.versions.etcd) else "echo 'ETCD_ENABLE_V2=\"false\"' >> {c}; "
    try:
        for node in nodes.values():
            node.run(f"cp -p {ETCD_CONF} {backup} && sed -i '/^ETCD_ENABLE_V2=/d' {ETCD_CONF}; "
                     + off.format(c=ETCD_CONF), check=True)
        _restart_etcd_together(nodes)
        healthy(view, ("etcd cluster",), "etcd back, v2 off", ETCD_DEADLINE)
        finding = detect(view, V2_CHECKS, {"etcd v2 API off"}, list(nodes))
        expect.true("what the v2 check saw", "404" in finding.seen, "GET /v2/keys/ -> 404", finding.seen,
                    "the diagnosis was not made from etcd's answer")
    finally:
        for node in nodes.values():
            node.run(f"test -e {backup} && mv -f {backup} {ETCD_CONF}")
        _restart_etcd_together(nodes)
    healthy(view, AFTER_V2, "after: v2 API back, Calico and Docker working", ETCD_DEADLINE)
    names = wait_for(lambda: expect.ran(first.run(node_commands.calicoctl("get node"), timeout=60)).stdout.split()[1:],
                     lambda seen: sorted(seen) == sorted(nodes), "calicoctl get node lists every node", timeout=60)
    print(f"calico: calicoctl get node -> {names}")
    _docker_store_shares_a_new_network(first, second)
    same_keys(before, calico_keys(first))


def _docker_store_shares_a_new_network(first: Node, second: Node) -> None:
    network = f"fault-v2-{uuid.uuid4().hex[:6]}"
    try:
        expect.command_ok(first.run(f"docker network create --driver calico --ipam-driver calico-ipam {network}",
                                    timeout=60), "Docker or the calico driver cannot write to etcd")
        try:
            wait_for(lambda: second.run(f"docker network inspect {shlex.quote(network)}").ok, bool,
                     f"{network} on {second.name}", timeout=60)
        except Timeout:
            expect.fail(f"{network} created on {first.name} seen on {second.name}", "listed", "missing",
                        "Docker's cluster store is not shared again")
        print(f"docker: {network} created on {first.name} is listed on {second.name}")
    finally:
        first.run(f"docker network rm {network} >/dev/null 2>&1", timeout=60)

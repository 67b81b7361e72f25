"""The e2e grading of an upgrade rehearsal fails on the broken cases the old self-grading let
pass (a Docker upgrade that wiped every IPAM block, a key rewritten, a lost peer), and passes a
clean Docker upgrade whose restarted workloads got new endpoints."""

from __future__ import annotations

import pytest

from calicolab.core import config
from calicolab.upgrade.rehearsal import Endpoint, RehearsalResult
from e2e.expect import CheckFailed
from e2e.upgrade.grading import grade

CFG = config.load(environ={})
BLOCK1 = "/calico/ipam/v2/assignment/ipv4/block/192.168.166.128-26"
AFFINITY1 = "/calico/ipam/v2/host/node1/ipv4/block/192.168.166.128-26"
EP_OLD, EP_NEW, NET = "a" * 64, "b" * 64, "n" * 64
CALICO_EP = "/calico/v1/host/node1/workload/libnetwork/libnetwork/endpoint/{}"
DOCKER_EP = f"/docker/network/v1.0/endpoint/{NET}/{{}}"
BEFORE = {BLOCK1: '{"allocations":[0,null]}', AFFINITY1: "{}", "/calico/v1/Ready": "true",
          CALICO_EP.format(EP_OLD): "{}", DOCKER_EP.format(EP_OLD): "{}"}
AFTER = {BLOCK1: '{"allocations":[null,0]}', AFFINITY1: "{}", "/calico/v1/Ready": "true",
         CALICO_EP.format(EP_NEW): "{}", DOCKER_EP.format(EP_NEW): "{}"}
PINGS = {"upg-node1->upg-node2": 62, "upg-node2->upg-node1": 62}


def _docker_result(**changes) -> RehearsalResult:
    result = RehearsalResult("docker", "20.10.24", before=dict(BEFORE), after=dict(AFTER),
                             restarted=[Endpoint("upg-node1", EP_OLD, NET, "192.168.166.128/26")],
                             pings_before=dict(PINGS), pings_after=dict(PINGS), pings_new=dict(PINGS),
                             survivors={"network upgnet on node1": "same", "container upg-node1": "same"})
    for key, value in changes.items():
        setattr(result, key, value)
    return result


def test_a_clean_docker_upgrade_passes():
    grade(_docker_result(), CFG)


def test_a_docker_upgrade_that_wiped_every_ipam_block_fails():
    wiped = {k: v for k, v in AFTER.items() if not k.startswith("/calico/ipam/")}
    with pytest.raises(CheckFailed, match="IPAM blocks and affinities kept"):
        grade(_docker_result(after=wiped), CFG)


def test_a_rewritten_key_fails():
    with pytest.raises(CheckFailed, match="keys lost or changed"):
        grade(_docker_result(after={**AFTER, "/calico/v1/Ready": "false"}), CFG)


def test_an_etcd_upgrade_may_not_even_rewrite_a_block():
    with pytest.raises(CheckFailed, match="keys lost or changed"):
        grade(_docker_result(component="etcd", restarted=[], after={**BEFORE, BLOCK1: AFTER[BLOCK1]}), CFG)
    grade(_docker_result(component="etcd", restarted=[], after=dict(BEFORE)), CFG)


def test_a_lost_peer_or_another_ttl_fails():
    with pytest.raises(CheckFailed, match="reply TTLs after"):
        grade(_docker_result(pings_after={**PINGS, "upg-node2->upg-node1": None}), CFG)
    with pytest.raises(CheckFailed, match="reply TTLs before"):
        grade(_docker_result(pings_before={**PINGS, "upg-node2->upg-node1": 63}), CFG)


def test_a_recreated_network_fails():
    with pytest.raises(CheckFailed, match="network and containers"):
        grade(_docker_result(survivors={"network upgnet on node1": "1234 -> 5678"}), CFG)

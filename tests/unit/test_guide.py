"""e2e/guide.py: the guide's facts, and the first principles the upgrade checks use."""

from __future__ import annotations

import pytest

from calicolab.core import config
from e2e import guide


def test_cluster_yaml_describes_the_guides_topology():
    cfg = config.load(environ={})
    assert {n.name: n.ip for n in cfg.nodes} == guide.NODES and cfg.subnet == guide.SUBNET


@pytest.mark.parametrize("current,target,minors", [
    ("3.3.25", "3.5.16", [(3, 4), (3, 5)]),
    ("3.4.23", "3.5.16", [(3, 5)]),
    ("3.5.16", "3.5.30", [(3, 5)]),  # a patch upgrade is one hop
    ("3.5.16", "3.5.16", []),
])
def test_etcd_passes_every_minor_version_one_at_a_time(current, target, minors):
    assert guide.minors_between(current, target) == minors


def test_workload_blocks_are_the_guides_26s():
    assert guide.block_of("192.168.104.0") == "192.168.104.0/26"
    assert guide.block_of("192.168.166.128") == "192.168.166.128/26"

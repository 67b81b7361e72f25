"""Keyspace snapshots: flattening etcd's v2 tree and naming what an upgrade lost or changed."""

import json

from fakes import FakeNode

from calicolab.stack import keyspace


def test_snapshot_flattens_the_tree_and_skips_a_missing_tree():
    tree = {"node": {"key": "/calico", "dir": True, "nodes": [
        {"key": "/calico/v1/Ready", "value": "true"},
        {"key": "/calico/ipam", "dir": True, "nodes": [{"key": "/calico/ipam/x", "value": "1"}]}]}}
    node = FakeNode("node1", rules={r"/v2/keys/calico\?": lambda _c: (0, json.dumps(tree)),
                                    r"/v2/keys/docker\?": lambda _c: (0, json.dumps({"errorCode": 100}))})
    assert keyspace.snapshot(node, "10.0.0.1") == {"/calico/v1/Ready": "true", "/calico/ipam/x": "1"}


def test_diff_names_lost_changed_added_and_what_the_step_may_do():
    before = {"/calico/a": "1", "/calico/b": "2", "/docker/ep/1": "x", "/calico/c": "3", "/docker/ep/2": "z"}
    after = {"/calico/a": "1", "/calico/b": "9", "/docker/ep/1": "y", "/calico/d": "4"}
    rules = keyspace.Expected(may_change=keyspace.exact("/docker/ep/1"), may_delete=keyspace.exact("/docker/ep/2"))
    d = keyspace.diff(before, after, rules)
    assert (d.lost, d.changed, d.added, d.expected, d.deleted) == (
        ["/calico/c"], ["/calico/b"], ["/calico/d"], ["/docker/ep/1"], ["/docker/ep/2"])
    assert not d.clean and "1 lost" in d.summary()
    assert keyspace.diff(before, dict(before)).clean


def test_a_key_allowed_to_change_is_lost_when_it_disappears():
    # The old diff filed a vanished key that matched an "allowed" pattern as an expected change.
    before = {"/docker/network/v1.0/endpoint_count/n1": '{"Count":2}'}
    d = keyspace.diff(before, {}, keyspace.Expected(may_change=(r"^/docker/network/v1\.0/endpoint_count/",)))
    assert d.lost == ["/docker/network/v1.0/endpoint_count/n1"] and not d.clean


BLOCK = "/calico/ipam/v2/assignment/ipv4/block/192.168.104.0-26"
AFFINITY = "/calico/ipam/v2/host/node2/ipv4/block/192.168.104.0-26"


def test_ipam_blocks_and_affinities_are_never_allowed_to_vanish():
    # A Docker upgrade that wiped every IPAM block must fail, whatever the step may delete.
    before = {BLOCK: '{"cidr":"192.168.104.0/26"}', AFFINITY: "{}"}
    everything = keyspace.Expected(may_change=(r"^/calico/",), may_delete=(r"^/calico/",))
    assert keyspace.diff(before, {}, everything).lost == [BLOCK, AFFINITY]
    rewritten = {BLOCK: '{"cidr":"192.168.104.0/26","allocations":[0]}', AFFINITY: "{}"}
    assert keyspace.diff(before, rewritten, keyspace.Expected(may_change=keyspace.exact(BLOCK))).clean

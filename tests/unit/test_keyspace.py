"""Keyspace snapshots: flattening etcd's v2 tree and naming what an upgrade lost or changed."""

import json

from calicolab.stack import keyspace
from tests.fakes import FakeNode


def test_snapshot_flattens_the_tree_and_skips_a_missing_tree():
    tree = {"node": {"key": "/calico", "dir": True, "nodes": [
        {"key": "/calico/v1/Ready", "value": "true"},
        {"key": "/calico/ipam", "dir": True, "nodes": [{"key": "/calico/ipam/x", "value": "1"}]}]}}
    node = FakeNode("node1", rules={r"/v2/keys/calico\?": lambda _c: (0, json.dumps(tree)),
                                    r"/v2/keys/docker\?": lambda _c: (0, json.dumps({"errorCode": 100}))})
    assert keyspace.snapshot(node, "10.0.0.1") == {"/calico/v1/Ready": "true", "/calico/ipam/x": "1"}


def test_diff_names_lost_changed_and_allowed_changes():
    before = {"/calico/a": "1", "/calico/b": "2", "/docker/ep/1": "x", "/calico/c": "3"}
    after = {"/calico/a": "1", "/calico/b": "9", "/docker/ep/1": "y", "/calico/d": "4"}
    d = keyspace.diff(before, after, allowed=(r"^/docker/ep/",))
    assert (d.lost, d.changed, d.added, d.expected) == (["/calico/c"], ["/calico/b"], ["/calico/d"], ["/docker/ep/1"])
    assert not d.clean and "1 lost" in d.summary()
    assert keyspace.diff(before, dict(before)).clean

"""The dwell and rollback drill's own rules: the lowest common version, what a dwell may
target, and that its verdict fails on each broken observation."""

from __future__ import annotations

import pytest

from calicolab.core import config
from calicolab.core.errors import UserError
from calicolab.stack import keyspace
from calicolab.upgrade import drills


def test_a_mixed_cluster_runs_at_the_lowest_members_minor():
    assert drills.lowest_common({"node1": "3.4.23", "node2": "3.3.25"}) == "3.3.0"
    assert drills.lowest_common({"node1": "3.5.30", "node2": "3.5.16"}) == "3.5.0"


def test_a_dwell_moves_one_minor_towards_the_target():
    cfg = config.load({"etcd": "3.3.25"}, environ={})
    assert drills.next_minor(cfg, "3.5.30") == "3.4.23"
    cfg = config.load({"etcd": "3.4.23"}, environ={})
    assert drills.next_minor(cfg, "3.5.30") == "3.5.30"


@pytest.mark.parametrize("running,target,fragment", [
    ("3.5.16", "3.5.30", "not a minor above"),  # a patch upgrade leaves no mixed minors
    ("3.5.30", "3.5.30", "not a minor above"),
    ("3.5.30", "3.4.23", "etcd forbids the downgrade"),
])
def test_a_dwell_without_a_newer_minor_is_refused(running, target, fragment):
    cfg = config.load({"etcd": running}, environ={})
    with pytest.raises(UserError, match=fragment):
        drills.next_minor(cfg, target)


def _clean() -> drills.DrillResult:
    result = drills.DrillResult("rollback", checks=[drills.Check("cluster version", "3.3.0", "3.3.0")])
    result.pings = {"a->b": 62, "b->a": 62}
    return result


def test_the_verdict_passes_clean_and_fails_each_broken_observation():
    assert _clean().problems == []
    moved = _clean()
    moved.checks[0].seen = "3.4.0"
    assert moved.problems == ["cluster version: expected 3.3.0, seen 3.4.0"]
    lost = _clean()
    lost.keys = keyspace.diff({"/calico/v1/host/node1/bird_ip": "x"}, {})
    assert "1 lost" in lost.problems[0]
    unreachable = _clean()
    unreachable.pings["b->a"] = None
    assert unreachable.problems == ["ping b->a failed"]


def test_the_v2_backup_keeps_values_and_empty_folders():
    import json

    from fakes import FakeNode

    tree = {"node": {"key": "/calico", "dir": True, "nodes": [
        {"key": "/calico/v1/Ready", "value": "true"},
        {"key": "/calico/v1/policy/profile/net1/tags", "dir": True},  # empty: no "nodes"
        {"key": "/calico/ipam", "dir": True, "nodes": [{"key": "/calico/ipam/x", "value": "{\"a\": 1}"}]}]}}
    node = FakeNode("node1", rules={r"/v2/keys/calico\?": lambda _c: (0, json.dumps(tree)),
                                    r"/v2/keys/docker\?": lambda _c: (0, json.dumps({"errorCode": 100}))})
    backup = drills.v2_backup(node, "10.0.0.1")
    assert backup.keys == {"/calico/v1/Ready": "true", "/calico/ipam/x": "{\"a\": 1}"}
    assert backup.dirs == ["/calico/v1/policy/profile/net1/tags"]


def test_a_snapshot_crosses_nodes_in_command_lines_below_the_kernels_limit():
    import base64
    import hashlib
    import re

    from fakes import FakeNode

    data = bytes(range(256)) * 2000  # 512 KB
    blob = base64.b64encode(data).decode()
    digest = hashlib.sha256(data).hexdigest()
    written: list[str] = []
    src = FakeNode("node1", rules={r"^base64 -w0 ": blob, r"^sha256sum ": f"{digest}  f"})

    def append(cmd: str):
        written.append(re.match(r"printf %s (\S+) >>", cmd).group(1))
        return 0, ""

    dst = FakeNode("node2", rules={r"^rm -f ": "", r"^printf %s ": append, r"^base64 -d ": "",
                                   r"^sha256sum ": lambda _c: (0, hashlib.sha256(base64.b64decode(
                                       "".join(written))).hexdigest() + "  f")})
    drills.copy_file(src, dst, "/var/lib/x.db")
    assert "".join(written) == blob
    assert max(len(c) for c in dst.commands) < 128 * 1024

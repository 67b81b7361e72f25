"""Snapshots of etcd's v2 keyspace (the /calico and /docker trees) and what changed between two.

An upgrade must keep every key Calico and Docker wrote; keys that the upgrade itself is
expected to rewrite are named by patterns, so nothing else can change unnoticed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from calicolab.core.remote import Node
from calicolab.stack import etcd_query

TREES = ("/calico", "/docker")


def snapshot(node: Node, ip: str, trees: tuple[str, ...] = TREES) -> dict[str, str]:
    """Every key under the trees with its value (directories are implied by their keys)."""
    return read_trees(node, ip, trees)[0]


def read_trees(node: Node, ip: str, trees: tuple[str, ...] = TREES) -> tuple[dict[str, str], list[str]]:
    """Every key under the trees with its value, and the empty directories (no key implies them)."""
    keys: dict[str, str] = {}
    empty: list[str] = []
    for tree in trees:
        # https with the client certificate on etcd_tls clusters (etcd_query.curl_command)
        res = node.run(etcd_query.curl_command(ip, f"/v2/keys{tree}?recursive=true&sorted=true", "-sS -m 10"),
                       timeout=30)
        if not res.ok:
            raise RuntimeError(f"{node.name}: cannot read {tree} from etcd: {res.describe()}")
        data = json.loads(res.stdout)
        if data.get("errorCode") == 100:  # key not found: the tree does not exist (yet)
            continue
        if "node" not in data:
            raise RuntimeError(f"{node.name}: unexpected answer for {tree}: {res.stdout[:200]}")
        _walk(data["node"], keys, empty)
    return keys, sorted(empty)


def _walk(item: dict, out: dict[str, str], empty: list[str]) -> None:
    if item.get("dir"):
        children = item.get("nodes", [])
        if not children and item.get("key"):
            empty.append(item["key"])
        for child in children:
            _walk(child, out, empty)
    else:
        out[item["key"]] = item.get("value", "")


# IPAM blocks and their host affinities: a step may rewrite a block (its allocations change
# when workloads restart) but never make one vanish; the addresses in it would be handed out twice.
NEVER_LOST = (r"^/calico/ipam/v2/assignment/ipv4/block/", r"^/calico/ipam/v2/host/[^/]+/ipv4/block/")


def exact(*keys: str) -> tuple[str, ...]:
    """Patterns that match exactly these keys."""
    return tuple(f"^{re.escape(k)}$" for k in keys)


@dataclass(frozen=True)
class Expected:
    """What one step may do to the keyspace, key by key: the keys it rewrites on purpose and
    the keys it deletes on purpose (exact keys, or patterns for keys it must rewrite)."""

    may_change: tuple[str, ...] = ()
    may_delete: tuple[str, ...] = ()
    never_lost: tuple[str, ...] = NEVER_LOST


@dataclass
class KeyDiff:
    lost: list[str] = field(default_factory=list)      # gone, and not a key the step deletes
    changed: list[str] = field(default_factory=list)   # new value, and not a key the step rewrites
    added: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # rewritten as the step must
    deleted: list[str] = field(default_factory=list)   # deleted as the step must

    @property
    def clean(self) -> bool:
        return not (self.lost or self.changed)

    def summary(self) -> str:
        parts = [f"{len(self.lost)} lost", f"{len(self.changed)} changed", f"{len(self.added)} added",
                 f"{len(self.expected)} expected changes", f"{len(self.deleted)} expected deletions"]
        text = ", ".join(parts)
        if self.lost:
            text += f"; lost: {', '.join(self.lost[:5])}"
        if self.changed:
            text += f"; changed: {', '.join(self.changed[:5])}"
        return text


def diff(before: dict[str, str], after: dict[str, str], expected: Expected = Expected()) -> KeyDiff:
    """Compare two snapshots under what the step may do. A key that disappears is lost unless
    the step deletes that very key; IPAM blocks and affinities are lost whenever they vanish."""
    def matches(patterns: tuple[str, ...], key: str) -> bool:
        return any(re.search(p, key) for p in patterns)

    result = KeyDiff()
    for key in sorted(before):
        if key not in after:
            if matches(expected.may_delete, key) and not matches(expected.never_lost, key):
                result.deleted.append(key)
            else:
                result.lost.append(key)
        elif after[key] != before[key]:
            (result.expected if matches(expected.may_change, key) else result.changed).append(key)
    result.added = sorted(set(after) - set(before))
    return result

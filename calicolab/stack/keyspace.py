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
    keys: dict[str, str] = {}
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
        _walk(data["node"], keys)
    return keys


def _walk(item: dict, out: dict[str, str]) -> None:
    if item.get("dir"):
        for child in item.get("nodes", []):
            _walk(child, out)
    else:
        out[item["key"]] = item.get("value", "")


@dataclass
class KeyDiff:
    lost: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # changed keys matching an allowed pattern

    @property
    def clean(self) -> bool:
        return not (self.lost or self.changed)

    def summary(self) -> str:
        parts = [f"{len(self.lost)} lost", f"{len(self.changed)} changed", f"{len(self.added)} added",
                 f"{len(self.expected)} expected changes"]
        text = ", ".join(parts)
        if self.lost:
            text += f"; lost: {', '.join(self.lost[:5])}"
        if self.changed:
            text += f"; changed: {', '.join(self.changed[:5])}"
        return text


def diff(before: dict[str, str], after: dict[str, str], allowed: tuple[str, ...] = ()) -> KeyDiff:
    """Compare two snapshots; keys matching an allowed pattern may change or go away."""
    patterns = [re.compile(p) for p in allowed]
    result = KeyDiff()
    for key in sorted(before):
        if any(p.search(key) for p in patterns):
            if after.get(key) != before[key]:
                result.expected.append(key)
        elif key not in after:
            result.lost.append(key)
        elif after[key] != before[key]:
            result.changed.append(key)
    result.added = sorted(set(after) - set(before))
    return result

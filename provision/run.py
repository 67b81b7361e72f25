"""Run the guide's sections in order on all nodes; per-node steps run on the nodes in
parallel, cluster steps (etcd's start-together) across them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from calicolab.core.config import ClusterConfig
from calicolab.core.remote import Node, in_parallel
from calicolab.stack import downloads
from provision import calico, docker, etcd, hosts, platform, workloads
from provision.context import Context
from provision.steps import Change

SECTIONS = (hosts, etcd, docker, calico, workloads)


def provision(cfg: ClusterConfig, nodes: Sequence[Node], facts: dict[str, str],
              say: Callable[[str], None]) -> list[Change]:
    lock = downloads.Lock.load(cfg.lock_path)  # one for both nodes: they may lock the same artifact
    base = [Context(cfg, n, cfg.node(n.name), platform.detect(n), facts=facts, lock=lock, say=say) for n in nodes]
    changes: list[Change] = []
    for module in SECTIONS:
        contexts = [replace(c, section=module.SECTION) for c in base]
        by_node = in_parallel(nodes, lambda n, cs=contexts, m=module: [
            step(next(c for c in cs if c.node is n)) for step in m.STEPS])
        section_changes = [ch for n in nodes for ch in by_node[n.name]]
        for step in getattr(module, "CLUSTER_STEPS", ()):
            section_changes += step(contexts)
        for ch in section_changes:
            say(ch.line())
        changes += section_changes
    return changes

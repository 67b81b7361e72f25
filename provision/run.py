"""Run the guide's sections in order on all nodes; per-node steps run on the nodes in
parallel, cluster steps (etcd's start-together) across them."""

from __future__ import annotations

import time
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
            timed(step, next(c for c in cs if c.node is n)) for step in m.STEPS])
        section_changes = [ch for n in nodes for ch in by_node[n.name]]
        for step in getattr(module, "CLUSTER_STEPS", ()):
            start = time.monotonic()
            made = step(contexts)
            section_changes += [replace(ch, seconds=round(time.monotonic() - start, 2)) for ch in made]
        for ch in section_changes:
            say(ch.line())
        changes += section_changes
    return changes


def timed(step: Callable[[Context], Change], ctx: Context) -> Change:
    start = time.monotonic()
    change = step(ctx)
    return replace(change, seconds=round(time.monotonic() - start, 2))


def slowest(changes: Sequence[Change], count: int = 3) -> str:
    """Where provisioning's time went: the slowest steps, e.g. `calico/node image 80.1 s
    (node2)`; a cluster step (run across the nodes at once) is named once."""
    seen: dict[tuple[str, float], Change] = {}
    for ch in changes:
        if ch.seconds is not None:
            seen.setdefault((ch.step, ch.seconds), ch)
    top = sorted(seen.values(), key=lambda ch: -(ch.seconds or 0.0))[:count]
    return ", ".join(f"{ch.step} {ch.seconds:.1f} s ({ch.node})" for ch in top)

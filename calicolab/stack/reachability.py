"""A reachability matrix probed in one round: every source at once, every probe with its own
timeout, and each "blocked" verdict kept only when a positive control in the same round backs it.

A blocked probe costs its whole timeout, so sources probed one after another add their timeouts
up; probed together the round takes one timeout. Concurrency has a price: a loaded node answers
late, and a late answer must never read as isolation. So a blocked verdict stands only if, in the
same round, its source reached something (its own address at least: the probe ran and answered
in time) and its destination was reached by some other source (it was up and answering). A round
with an unbacked verdict is inconclusive, and the caller probes again until its deadline.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from calicolab.core.remote import Node
from calicolab.stack import workloads

SELF = " (self)"  # the label suffix of a source's control probe to its own address


@dataclass(frozen=True)
class Source:
    node: Node
    workload: str | None  # None: the node itself
    ip: str


Pair = tuple[str, str]


def round_of(sources: Mapping[str, Source], targets: Mapping[str, Mapping[str, str]], proto: str,
             wait: int = 2) -> tuple[dict[Pair, bool], dict[str, bool]]:
    """Probe every source's targets (source label -> target label -> IPv4) at once: the matrix
    as (source, target) -> answered, and per source whether its control to itself answered
    (workloads only: a node serves nothing to probe itself on over TCP, and needs no such control
    when it reaches anything else)."""
    def one(label: str) -> dict[str, bool]:
        src = sources[label]
        asked = dict(targets[label])
        if src.workload is not None:
            asked[label + SELF] = src.ip
        return workloads.reachable(src.node, src.workload, asked, proto, wait=wait)

    with ThreadPoolExecutor(max_workers=max(1, len(sources))) as pool:
        answers = dict(zip(sources, pool.map(one, sources), strict=True))
    seen = {(src, dst): ok for src, got in answers.items() for dst, ok in got.items() if not dst.endswith(SELF)}
    controls = {src: got.get(src + SELF, False) for src, got in answers.items()}
    return seen, controls


def unbacked(seen: Mapping[Pair, bool], controls: Mapping[str, bool] | None = None) -> dict[Pair, str]:
    """The blocked verdicts no positive control of the same round backs, each with why: its
    source reached nothing (nor itself), or no other source reached its destination."""
    controls = controls or {}
    source_ok = {s for (s, _), ok in seen.items() if ok} | {s for s, ok in controls.items() if ok}
    reached = {d for (_, d), ok in seen.items() if ok}
    out = {}
    for (src, dst), ok in seen.items():
        if ok:
            continue
        if src not in source_ok:
            out[(src, dst)] = f"{src} reached nothing in the same round, not even itself"
        elif dst not in reached:
            out[(src, dst)] = f"no source reached {dst} in the same round"
    return out

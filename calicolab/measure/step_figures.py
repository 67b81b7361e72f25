"""A rehearsal's figures step by step: what the disruption probes, the route monitors and the
etcd leader watcher saw while each hop of the rolling upgrade ran.

A step is one hop (one member or node moved to one version). Its window runs from the hop's
start to the next hop's start (the last to the end of the recording; the first also holds
what came before it), so nothing seen is left out: a gap belongs to the step in which traffic
stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from calicolab.measure.etcd_leader import LeaderFigures
from calicolab.stack import disruption


@dataclass
class Hop:
    """One member or node moved to one version (calicolab/upgrade/upgrader.py makes them), or a
    fault's window taken as one step (fault_window.py): the span its step is cut from."""

    component: str
    node: str
    before: str
    after: str
    seconds: float = 0.0
    gate: str = ""
    started: float = 0.0  # wall clock: the probes' figures are sliced by these windows
    ended: float = 0.0
    bgp_seconds: float | None = None  # calico-node (re)started -> BGP Established on every node
    # The kind of step (its budgets.yaml entry; "" is the component's own name), and whether the
    # hop stops and starts its node's workloads (an outage inside the hop is then theirs). The
    # upgrader takes both from the component's entry (calicolab/upgrade/components.py).
    kind: str = ""
    restarts_workloads: bool = False


@dataclass
class StepFigures:
    step: str  # e.g. "etcd 3.3.25->3.4.23 on node1"
    kind: str
    node: str
    start: float  # wall clock
    end: float
    longest_gap_s: dict[str, float] = field(default_factory=dict)  # per direction
    lost: dict[str, int] = field(default_factory=dict)  # per direction
    reorders: int = 0
    tcp_reconnects: int = 0
    bgp_established_s: float | None = None
    route_back_s: float | None = None
    leader_changes: int | None = None
    leaderless_s: float | None = None
    gap_outside_restart_s: float = 0.0

    @property
    def lost_packets(self) -> int:
        return sum(self.lost.values())

    @property
    def longest(self) -> float:
        return max(self.longest_gap_s.values(), default=0.0)

    def measure(self, name: str) -> float | int | None:
        """A figure by its budgets.yaml name."""
        if name == "lost_packets":
            return self.lost_packets
        if name == "longest_gap_s":
            return self.longest
        return getattr(self, name)

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "lost_packets": self.lost_packets}


def _overlap_outside(start: float, seconds: float, allowed: tuple[float, float] | None) -> float:
    """How much of the interval [start, start + seconds] lies outside `allowed`."""
    if allowed is None:
        return seconds
    a, b = allowed
    inside = max(0.0, min(start + seconds, b) - max(start, a))
    return max(0.0, seconds - inside)


def build(hops: Sequence[Hop], probes: disruption.Figures | None, leader: LeaderFigures | None,
          end: float, routes_seen: bool = True) -> list[StepFigures]:
    steps = []
    for i, hop in enumerate(hops):
        lo = float("-inf") if i == 0 else hop.started
        hi = hops[i + 1].started if i + 1 < len(hops) else float("inf")
        fig = StepFigures(f"{hop.component} {hop.before}->{hop.after} on {hop.node}",
                          hop.kind or hop.component, hop.node, hop.started, hop.ended or end,
                          bgp_established_s=hop.bgp_seconds)
        allowed = (hop.started, hop.ended) if hop.restarts_workloads else None
        if probes is not None:
            for direction, d in probes.directions.items():
                mine = [g for g in d.gaps if lo <= g.start < hi]
                fig.longest_gap_s[direction] = round(disruption.longest(mine), 3)
                fig.lost[direction] = sum(g.lost for g in mine)
                fig.reorders += disruption.in_window(d.reorder_times, lo, hi)
                fig.gap_outside_restart_s += sum(_overlap_outside(g.start, g.seconds, allowed) for g in mine)
            fig.gap_outside_restart_s = round(fig.gap_outside_restart_s, 3)
            fig.tcp_reconnects = sum(disruption.in_window(t, lo, hi) for t in probes.reconnects.values())
            if routes_seen:
                fig.route_back_s = round(max((r.seconds for r in probes.routes if lo <= r.start < hi),
                                             default=0.0), 3)
        if leader is not None and leader.samples:
            fig.leader_changes = leader.changes_in(lo, hi)
            fig.leaderless_s = leader.leaderless_in(max(lo, hop.started), min(hi, end))
        steps.append(fig)
    return steps


def gap_rows(steps: Sequence[StepFigures], probes: disruption.Figures) -> list[dict[str, object]]:
    """Every gap, named by its step, for probes.json (`at` is the wall clock; the run page
    places it from the run's start)."""
    rows = []
    for d in probes.directions.values():
        for g in d.gaps:
            step = next((s.step for s in reversed(steps) if g.start >= s.start), steps[0].step if steps else "")
            rows.append({"step": step, "direction": g.direction, "at": g.start, "seconds": g.seconds,
                         "lost": g.lost})
    return sorted(rows, key=lambda r: r["at"])


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table_rows(steps: Sequence[StepFigures], directions: Sequence[str]) -> list[tuple[str, ...]]:
    return [(s.step, *(_s(s.longest_gap_s.get(d)) for d in directions), str(s.lost_packets), str(s.reorders),
             str(s.tcp_reconnects), "-" if s.leader_changes is None else str(s.leader_changes),
             _s(s.leaderless_s), _s(s.bgp_established_s), _s(s.route_back_s)) for s in steps]

"""Disruption budgets as data (budgets.yaml): per kind of step, the most each figure may reach.

A budget file maps a step kind to figures and their limits, e.g.

    etcd-member-upgrade:
      lost_packets: 0
      leader_changes: 1

Step figures are checked on every step (hop) of that kind; rehearsal figures (the ICMP
background ping, the etcd client history) are measured over the whole rehearsal of the
component and checked there. A figure that is budgeted but could not be measured fails too:
a budget nobody measured proves nothing. Bad files are refused in one line before anything runs.

A rehearsal held under an impairment (calicolab/stack/impairments.py) is checked against the
entry `<kind> under <impairment>` (e.g. `calico-node-restart under loss:179`) when the file has
one, and against the step kind's own entry otherwise: what the injected fault may cost is data
with its reason, and the plain entry keeps its limits for the runs without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from calicolab.core.errors import UserError
from calicolab.core.paths import ROOT
from calicolab.upgrade.steps import KIND, StepFigures

DEFAULT_FILE = ROOT / "budgets.yaml"
ENV = "CALICOLAB_BUDGETS"  # the e2e suite's way to another file (invoke upgrade has --budgets)


@dataclass(frozen=True)
class Measure:
    kind: type  # int (a count) or float (seconds)
    scope: str  # step | rehearsal
    what: str
    cause: str  # the likely cause when it is over budget


MEASURES: dict[str, Measure] = {
    "lost_packets": Measure(int, "step", "UDP probe datagrams lost, both directions",
                            "workload traffic stopped: routes withdrawn, a blackhole, or the workloads restarted"),
    "longest_gap_s": Measure(float, "step", "longest UDP probe gap in either direction, seconds",
                             "workload traffic stopped for that long"),
    "reorders": Measure(int, "step", "UDP probe datagrams that arrived after a later one",
                        "traffic took two paths while routes changed"),
    "tcp_reconnects": Measure(int, "step", "times the long-lived TCP connection was lost and re-made",
                              "a workload restarted, or the path was down long enough for TCP to give up"),
    "leader_changes": Measure(int, "step", "etcd leader elections that produced a new leader",
                              "members restarted more than once, or elections were disrupted (peer port 2380)"),
    "leaderless_s": Measure(float, "step", "seconds no etcd member named a leader",
                            "a member was down longer, or the cluster lost quorum"),
    "bgp_established_s": Measure(float, "step", "seconds from calico-node (re)started to BGP Established everywhere",
                                 "BIRD reconnects slowly or the peer (TCP 179) does not answer"),
    "route_back_s": Measure(float, "step", "longest time a node had no route to its peer's block, seconds",
                            "BIRD withdrew the routes (a Cease on stop, graceful restart or kernel `persist` off)"),
    "gap_outside_restart_s": Measure(float, "step",
                                     "probe outage outside the window in which the step restarts its workloads, "
                                     "seconds", "traffic stopped for workloads the step does not restart"),
    "icmp_lost": Measure(int, "rehearsal", "background ping replies missing during the upgrade (or the fault)",
                         "routes were withdrawn (ICMP is the second signal)"),
    "lost_acknowledged_writes": Measure(int, "rehearsal", "etcd writes acknowledged and gone after the upgrade",
                                        "etcd lost data across the upgrade"),
}
KINDS = tuple(sorted(set(KIND.values())))
# `<kind> under <impairment key>`: the key as Impairment.key spells it (kind, then the port if any).
# Or a condition the run saw for itself: `recovery-session-lost` (BIRD's first session after a
# restart was dropped as it came up; e2e/faults reads it from the peer's BIRD log).
RECOVERY_SESSION_LOST = "recovery-session-lost"
_UNDER = re.compile(r"^(?P<kind>\S+) under (?P<impairment>(partition|loss|rate|delay)(:\d+)?|"
                    + RECOVERY_SESSION_LOST + ")$")
# Under recovery-session-lost an entry's outage figures are per dropped session: each drop costs
# the routes until the next session (BIRD's start delay plus a setup), and the peer may drop
# several in a row (CI, 2026-12-03: three, 4 s apart, 12.4 s without the route).
PER_DROP = frozenset({"route_back_s", "lost_packets", "longest_gap_s", "icmp_lost"})


@dataclass(frozen=True)
class Verdict:
    step: str
    measure: str
    measured: float | int | None
    budget: float | int
    source: str  # the budgets file

    @property
    def ok(self) -> bool:
        return self.measured is not None and self.measured <= self.budget

    def line(self) -> str:
        seen = "not measured" if self.measured is None else self.measured
        return f"{self.step}: {self.measure} {seen} (budget {self.budget})"

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


Budgets = dict[str, dict[str, float | int]]


def parse(data: object, source: str) -> Budgets:
    """Validate a loaded budgets document; UserError (one line) for anything wrong."""
    if not isinstance(data, Mapping):
        raise UserError(f"{source}: expected a mapping of step kinds ({', '.join(KINDS)}) to budgets")
    out: Budgets = {}
    for kind, entries in data.items():
        under = _UNDER.match(str(kind))
        if str(kind) not in KINDS and not (under and under["kind"] in KINDS):
            raise UserError(f"{source}: unknown step {kind!r}: use one of {', '.join(KINDS)}, or "
                            "'<step> under <impairment>' (e.g. 'calico-node-restart under loss:179')")
        if entries is None:
            entries = {}
        if not isinstance(entries, Mapping):
            raise UserError(f"{source}: {kind}: expected figure: limit pairs, got {entries!r}")
        out[kind] = {}
        for name, limit in entries.items():
            measure = MEASURES.get(name)
            if measure is None:
                raise UserError(f"{source}: {kind}: unknown figure {name!r}: use one of {', '.join(MEASURES)}")
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) or \
                    (measure.kind is int and not isinstance(limit, int)) or limit < 0:
                want = "a whole number (a count)" if measure.kind is int else "a number of seconds"
                raise UserError(f"{source}: {kind}.{name}: {limit!r} is not {want} at or above 0")
            out[kind][name] = limit
    return out


def load(path: Path | str | None = None) -> tuple[Budgets, str]:
    """(budgets, where they came from); the default file when no path is given."""
    file = Path(path) if path else DEFAULT_FILE
    if not file.is_file():
        raise UserError(f"budgets file {file} not found: give an existing file (--budgets FILE) "
                        f"or use the default {DEFAULT_FILE.name}")
    try:
        data = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as err:
        first = str(err).splitlines()[0] if str(err) else err.__class__.__name__
        raise UserError(f"{file}: not readable as YAML ({first})") from None
    return parse(data, str(file)), str(file)


def entry(budgets: Budgets, component_kind: str, under: str = "") -> str:
    """The entry a rehearsal of this kind is checked against (under: the impairment's key)."""
    special = f"{component_kind} under {under}"
    return special if under and special in budgets else component_kind


def check(steps: Sequence[StepFigures], component_kind: str, rehearsal: Mapping[str, float | int | None],
          budgets: Budgets, source: str, label: str, under: str = "", drops: int = 1) -> list[Verdict]:
    """Every budgeted figure of the rehearsal's steps (and of the rehearsal as a whole); under:
    the key of the impairment it ran under, if any (see entry()); drops: under
    recovery-session-lost, how many sessions were dropped (PER_DROP figures allow that many)."""
    verdicts = []
    chosen = entry(budgets, component_kind, under)
    times = max(1, drops) if chosen.endswith(f" under {RECOVERY_SESSION_LOST}") else 1
    for name, limit in budgets.get(chosen, {}).items():
        if name in PER_DROP and times > 1:
            limit = round(limit * times, 3)
        if MEASURES[name].scope == "rehearsal":
            verdicts.append(Verdict(label, name, rehearsal.get(name), limit, source))
        else:
            verdicts += [Verdict(s.step, name, s.measure(name), limit, source)
                         for s in steps if s.kind == component_kind]
    return verdicts

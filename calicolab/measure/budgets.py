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

A window in which BGP sessions were dropped by Calico 2.6's connection collision, and by nothing
else (calicolab.stack.parsers.bgp_drops, from both nodes' BIRD logs at debug level), is checked
against `<kind> under bgp-collision`, its outage figures once per drop. choose() is the one place
that picks the entry, for the faults, the rehearsals and their grading.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from calicolab.core.deadlines import deadline_factor
from calicolab.core.errors import UserError
from calicolab.core.paths import ROOT
from calicolab.measure.step_figures import StepFigures
from calicolab.stack import parsers

DEFAULT_FILE = ROOT / "budgets.yaml"  # the `budgets` setting's default (cfg.budgets_path)


@dataclass(frozen=True)
class Measure:
    kind: type  # int (a count) or float (seconds)
    scope: str  # step | rehearsal
    what: str
    cause: str  # the likely cause when it is over budget
    # Seconds spent starting processes: CPU-bound, so scaled by the run's deadline factor, which is
    # above 1 only under software emulation (TCG). Measured on the Debian VM lane: calico-node's
    # Python startup took 19 s there (journal: unit started 02:28:43, first log line 02:29:02)
    # against under a second on the lab. Traffic outage and loss figures are never scaled.
    startup: bool = False


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
                                 "BIRD reconnects slowly or the peer (TCP 179) does not answer", startup=True),
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


def kinds() -> tuple[str, ...]:
    """The kinds of step an entry may name: those of the project's own budgets.yaml, where each
    kind is declared by its entry (an upgradable component's step kind, calicolab/upgrade/
    components.py, or a fault's window, e2e/faults/). A budgets file of the user's own is held to
    them, so a misspelt kind is refused; tests/unit/test_budget_kinds.py checks that every kind
    of the project's file is used by a component or a fault, and every one used has an entry."""
    return _project_kinds(DEFAULT_FILE.stat().st_mtime_ns)


@functools.lru_cache(maxsize=1)
def _project_kinds(_stamp: int) -> tuple[str, ...]:
    data = yaml.safe_load(DEFAULT_FILE.read_text()) or {}
    return tuple(sorted({str(k).split(" under ", 1)[0] for k in data}))

# `<kind> under <impairment key>`: the key as Impairment.key spells it (kind, then the port if any).
# Or `<kind> under bgp-collision`: BGP sessions dropped by a connection collision and nothing else.
COLLISION = "bgp-collision"
# The name the collision entries had while the cause was not known: refused with the new one.
_RENAMED = {"recovery-session-lost": COLLISION}
_UNDER = re.compile(r"^(?P<kind>\S+) under (?P<impairment>(partition|loss|rate|delay)(:\d+)?|"
                    + COLLISION + ")$")
# Under bgp-collision an entry's outage figures are per dropped session: each drop costs the
# routes until the next session (BIRD's connect delay, 4 or 5 s, plus a setup), and the next
# attempt collides again about half the time (tests/unit/fixtures/bird_collision/ B-03: three in a
# row).
PER_DROP = frozenset({"route_back_s", "lost_packets", "longest_gap_s", "icmp_lost"})


@dataclass(frozen=True)
class Choice:
    """The entry a window is judged by, and why."""

    entry: str
    times: int = 1  # PER_DROP figures are allowed this many times over (one per collision drop)
    why: str = ""  # one line for the output and the reports; empty for the plain entry


def choose(budgets: Budgets, kind: str, impairment: str = "",
           drops: Sequence[parsers.BgpDrop] = ()) -> Choice:
    """The one place that picks a budgets entry: under an impairment, its entry when the file has
    one; else, when BGP sessions were dropped and every drop was a connection collision (shape A
    or B, told from BIRD's own log lines), `<kind> under bgp-collision`, per drop; a drop of any
    other kind keeps the strict entry, and says so."""
    if impairment:
        special = f"{kind} under {impairment}"
        return Choice(special, 1, f"held under {impairment}") if special in budgets else Choice(kind)
    others = [d for d in drops if not d.collision]
    if others:
        return Choice(kind, 1, "strict: BGP session dropped by something other than a connection collision: "
                      + "; ".join(d.describe() for d in others))
    if drops:
        special = f"{kind} under {COLLISION}"
        shapes = ", ".join(f"shape {d.shape}" for d in drops)
        if special in budgets:
            return Choice(special, len(drops), f"{len(drops)} BGP session(s) dropped by Calico 2.6's connection "
                          f"collision ({shapes}; {parsers.BIRD_SOURCE}; fixed upstream: {parsers.UPSTREAM_FIX})")
        return Choice(kind, 1, f"{len(drops)} BGP collision drop(s) ({shapes}), but no `{special}` entry")
    return Choice(kind)


@dataclass(frozen=True)
class Verdict:
    step: str
    measure: str
    measured: float | int | None
    budget: float | int
    source: str  # the budgets file
    scaled: str = ""  # how the file's limit was scaled for this run, and why (empty: as written)

    @property
    def ok(self) -> bool:
        return self.measured is not None and self.measured <= self.budget

    def line(self) -> str:
        seen = "not measured" if self.measured is None else self.measured
        return f"{self.step}: {self.measure} {seen} (budget {self.budget}{', ' + self.scaled if self.scaled else ''})"

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


Budgets = dict[str, dict[str, float | int]]


def parse(data: object, source: str) -> Budgets:
    """Validate a loaded budgets document; UserError (one line) for anything wrong."""
    if not isinstance(data, Mapping):
        raise UserError(f"{source}: expected a mapping of step kinds ({', '.join(kinds())}) to budgets")
    out: Budgets = {}
    for kind, entries in data.items():
        under = _UNDER.match(str(kind))
        old = re.match(r"^(\S+) under (\S+)$", str(kind))
        if old and old[2] in _RENAMED:
            raise UserError(f"{source}: {kind!r} is now '{old[1]} under {_RENAMED[old[2]]}' (the drops it "
                            "covered are BGP connection collisions, told from BIRD's log): rename the entry")
        known = kinds()
        if str(kind) not in known and not (under and under["kind"] in known):
            raise UserError(f"{source}: unknown step {kind!r}: use one of {', '.join(known)}, or "
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
    """(budgets, where they came from): the path given (the run's `budgets` setting,
    cfg.budgets_path), else the default file. Every reader (faults, rehearsals, grading, invoke
    upgrade) comes through here."""
    file = Path(path or DEFAULT_FILE)
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
    """The entry a rehearsal of this kind held under an impairment (its key) is checked against."""
    return choose(budgets, component_kind, under).entry


# The entries whose outage allowance is only for BIRD 1.6 replacing a kernel route, by deleting it
# and adding it again (sysdep/linux/netlink.c krt_replace_rte: two synchronous netlink exchanges,
# delete then add): the routes are otherwise kept (graceful restart, kernel `persist`), so the
# route monitor's figure is the length of that CPU-bound moment, and the traffic lost is what
# crossed it (both directions: with the guide's rp_filter=1 a node without the route to the
# peer's block also drops what comes from it). Under emulation they scale like startups.
# Debian VM lane (TCG, 1 vCPU), node2's restart: node1's route gone 93 ms from 08:31:43.483;
# the gaps 50 ms node1->node2 from .489 and 60 ms node2->node1 from .479 (node1's clock, the
# offset read off the datagrams), 11 datagrams; the lab: about 1 ms and none. Scaled (x5:
# 0.25 s, 25 datagrams) they stay 20 times below the shortest real withdrawal, BIRD's 5 s
# connect delay before a new session, so none can hide in them.
ROUTE_REPLACE_FIGURES = frozenset({"route_back_s", "longest_gap_s", "lost_packets"})
ROUTE_REPLACE_ONLY = frozenset({"calico-node-restart", "bird-kill"})


def check(steps: Sequence[StepFigures], component_kind: str, rehearsal: Mapping[str, float | int | None],
          budgets: Budgets, source: str, label: str, under: Choice | str = "",
          time_factor: float | None = None) -> list[Verdict]:
    """Every budgeted figure of the rehearsal's steps (and of the rehearsal as a whole), against
    the entry choose() picked (a str: an impairment's key, see entry()). Startup figures are
    scaled by the run's deadline factor (`time_factor`, default the run's own)."""
    chosen = under if isinstance(under, Choice) else choose(budgets, component_kind, under)
    factor = deadline_factor() if time_factor is None else time_factor
    verdicts = []
    for name, limit in budgets.get(chosen.entry, {}).items():
        scaled = ""
        if name in PER_DROP and chosen.times > 1:
            limit = round(limit * chosen.times, 3)
        if MEASURES[name].startup and factor > 1:
            scaled = f"{limit} x{factor:g}: process starts under software emulation"
            limit = round(limit * factor, 3)
        elif name in ROUTE_REPLACE_FIGURES and chosen.entry in ROUTE_REPLACE_ONLY and factor > 1:
            scaled = f"{limit} x{factor:g}: BIRD's delete-then-add of a route under software emulation"
            limit = round(limit * factor) if MEASURES[name].kind is int else round(limit * factor, 3)
        if MEASURES[name].scope == "rehearsal":
            verdicts.append(Verdict(label, name, rehearsal.get(name), limit, source, scaled))
        else:
            verdicts += [Verdict(s.step, name, s.measure(name), limit, source, scaled)
                         for s in steps if s.kind == component_kind]
    return verdicts

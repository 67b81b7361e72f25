"""One measured window, the same for a fault (e2e/faults), a rehearsal (an upgrade of one
component) and a drill: the disruption probes' and route monitors' records read back over the
window, the etcd leader watch where there is one, BGP logging at debug with every dropped session
classified from both nodes' BIRD logs, and the figures judged against the entry budgets.choose()
picks for what the window saw."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from calicolab.core.config import ClusterConfig
from calicolab.core.remote import Node
from calicolab.core.tables import Column, render
from calicolab.measure import bgp_watch, etcd_leader, step_figures
from calicolab.measure import budgets as budget_rules
from calicolab.measure.step_figures import Hop
from calicolab.stack import disruption, parsers

LOG_SLACK = 0.5  # seconds: datagrams sent this long before the logs are read have arrived


def directions_of(figures: list[step_figures.StepFigures]) -> list[str]:
    return sorted({d for s in figures for d in s.longest_gap_s})


def steps_table(figures: list[step_figures.StepFigures]) -> str:
    dirs = directions_of(figures)
    return render(("step", *(Column(f"gap {d} s", align="right") for d in dirs),
                   Column("lost", align="right"), Column("reorders", align="right"),
                   Column("reconnects", align="right"), Column("leader changes", align="right"),
                   Column("leaderless s", align="right"), Column("BGP Established s", align="right"),
                   Column("route back s", align="right")), step_figures.table_rows(figures, dirs))


def append_probe_gaps(cfg: ClusterConfig, rows: list[dict[str, object]]) -> None:
    """Add gaps to <reports>/probes.json (calicolab/report/run_data.py's probe_gaps)."""
    path = cfg.reports_path / "probes.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = json.loads(path.read_text()) if path.is_file() else []
    except ValueError:
        done = []
    path.write_text(json.dumps([*(done if isinstance(done, list) else []), *rows], indent=2) + "\n")


@dataclass
class Judgement:
    """The figures against the entry chosen for what the window saw."""

    choice: budget_rules.Choice
    verdicts: list[budget_rules.Verdict]
    drops: list[parsers.BgpDrop] = field(default_factory=list)

    @property
    def over(self) -> list[budget_rules.Verdict]:
        return [v for v in self.verdicts if not v.ok]

    def lines(self) -> list[str]:
        """What to print: the entry and why, and every dropped session with its lines."""
        out = [f"judged against {self.choice.entry!r}" + (f": {self.choice.why}" if self.choice.why else "")]
        for d in self.drops:
            out.append(f"BGP session dropped: {d.describe()}")
            out += [f"    {line}" for line in (*d.lines, *d.echo)]
        return out


def judge(steps: Sequence[step_figures.StepFigures], kind: str, whole: dict[str, float | int | None],
          budgets: tuple[budget_rules.Budgets, str], label: str, impairment: str = "",
          drops: Sequence[parsers.BgpDrop] = ()) -> Judgement:
    """The one judgement of a window: budgets.choose() picks the entry, budgets.check() the figures."""
    budget_set, source = budgets
    choice = budget_rules.choose(budget_set, kind, impairment, drops)
    return Judgement(choice, budget_rules.check(steps, kind, whole, budget_set, source, label, choice), list(drops))


@dataclass
class Window:
    """What a measured window gathered; filled in when it closes."""

    since: float = 0.0
    end: float = 0.0
    raw: disruption.Raw | None = None
    figures: disruption.Figures | None = None
    samples: list[etcd_leader.Sample] = field(default_factory=list)
    steps: list[step_figures.StepFigures] = field(default_factory=list)
    drops: list[parsers.BgpDrop] = field(default_factory=list)
    bgp: bgp_watch.BgpWatch | None = None

    def build(self, hops: Sequence[Hop]) -> list[step_figures.StepFigures]:
        """The hops' step figures from what the window read."""
        self.steps = step_figures.build(hops, self.figures, etcd_leader.analyze(self.samples) if self.samples else None,
                                        self.end)
        return self.steps


@contextlib.contextmanager
def measured(cfg: ClusterConfig, nodes: Sequence[Node], probes: Sequence[disruption.Probe],
             leaders: etcd_leader.Watcher | None = None, bgp: bool | bgp_watch.BgpWatch = True,
             say: Callable[[str], None] = print) -> Iterator[Window]:
    """Measure what happens inside the block: route monitors on, the leader watch (if given)
    polling, BIRD at debug (bgp: True for the window alone, or a watch the caller holds at debug
    across several windows); on leaving, the probes' records since the start, the leader
    samples and the dropped BGP sessions are in the Window (build() makes the step figures).
    The records are read even when the block fails, so a failure still shows what it cost."""
    out = Window()
    disruption.start_route_monitors(list(nodes))
    with contextlib.ExitStack() as stack:
        if isinstance(bgp, bgp_watch.BgpWatch):
            bgp.in_effect()  # still at debug (it answers at once), the logs marked from here
            out.bgp = bgp
        elif bgp:
            out.bgp = stack.enter_context(bgp_watch.watched(cfg, nodes, say))
        if leaders is not None:
            leaders.start()
        out.since = time.time()  # the probes' figures count from here (see disruption.Raw.since)
        try:
            yield out
        finally:
            if leaders is not None:
                out.samples = leaders.stop()
            out.end = time.time()
            if probes:
                out.raw = disruption.read(list(probes), out.end - LOG_SLACK, out.since)
                out.figures = disruption.figures(out.raw)
            if out.bgp is not None:
                out.drops = out.bgp.read()

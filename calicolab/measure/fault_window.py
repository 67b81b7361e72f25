"""A fault measured like an upgrade step: the disruption probes (UDP every 10 ms both ways, one
TCP connection) and the route monitors run across the fault tests; each fault's window
(calicolab.measure.window, the same as a rehearsal's) gets the step figures (longest gap per
direction, lost, reorders, reconnects, route back) and the BGP sessions dropped in it, told
from both nodes' BIRD logs at debug level, and is judged against its budgets (budgets.yaml:
bird-kill, felix-kill, or `... under bgp-collision` when every drop was a connection collision),
into <reports>/faults.json and the run page."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.core.remote import Node
from calicolab.measure import bgp_watch, step_figures
from calicolab.measure import budgets as budget_rules
from calicolab.measure import window as measuring
from calicolab.measure.step_figures import Hop
from calicolab.stack import disruption, parsers


@dataclass
class Measured:
    step: step_figures.StepFigures | None = None
    verdicts: list[budget_rules.Verdict] = field(default_factory=list)
    table: str = ""
    entry: str = ""  # the budgets entry the figures were checked against
    why: str = ""  # why that entry (budgets.Choice.why)
    drops: list[parsers.BgpDrop] = field(default_factory=list)  # BGP sessions dropped in the window
    # Figures of the whole fault measured by the test itself (set inside the block), e.g.
    # icmp_lost from its background ping: checked against the same entry as the probes' figures.
    whole: dict[str, float | int | None] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # the judgement, for the test's output

    @property
    def over(self) -> list[budget_rules.Verdict]:
        return [v for v in self.verdicts if not v.ok]


class FaultProbes:
    """Probes between two nodes' blocks for as long as the fault tests run."""

    def __init__(self, cfg: ClusterConfig, nodes: Sequence[Node], blocks: Sequence[str]) -> None:
        self.cfg = cfg
        self.nodes = list(nodes)
        self.budgets = budget_rules.load(cfg.budgets_path)  # the run's `budgets` setting
        # BIRD at debug from here to close(), for every window: asked once, so its wait (confd's
        # poll, then BIRD's 2 s interface scan to show it) passes while the first fault gets
        # ready, and later windows find it in effect (bgp_watch.BgpWatch.in_effect).
        self.bgp = bgp_watch.BgpWatch(cfg, self.nodes)
        self.bgp.start(wait=False)
        try:
            self.probes = disruption.start(self.nodes, blocks, prefix="flt-probe")
        except BaseException:
            self.bgp.restore()
            raise

    def close(self) -> None:
        try:
            self.bgp.restore()
        finally:
            disruption.stop(self.probes)

    @contextlib.contextmanager
    def window(self, kind: str, node: str, what: str, bgp: bool = True) -> Iterator[Measured]:
        """Measure what happens inside the block; the figures are filled in on leaving it. A kind
        without its budgets entry is refused before the fault is made: nothing would judge it."""
        entries, source = self.budgets
        if kind not in entries:
            raise UserError(f"{source} has no entry {kind!r}: a fault's window is judged by its own entry; "
                            "add one (docs/faults-and-doctor.md)")
        out = Measured()
        hop = Hop(kind, node, "", "", started=round(time.time(), 3), kind=kind)
        seen: measuring.Window | None = None
        try:
            with measuring.measured(self.cfg, self.nodes, self.probes, bgp=self.bgp if bgp else False) as seen:
                hop.started = round(seen.since, 3)
                yield out
        finally:
            if seen is not None:  # judged even when the block failed: the record shows what it cost
                self._judge(out, seen, hop, kind, what)

    def _judge(self, out: Measured, seen: measuring.Window, hop: Hop, kind: str, what: str) -> None:
        hop.ended = round(seen.end, 3)
        step = seen.build([hop])[0]
        step.step = what
        out.step, out.table, out.drops = step, measuring.steps_table([step]), seen.drops
        judged = measuring.judge([step], kind, out.whole, self.budgets, what, drops=seen.drops)
        out.verdicts, out.entry, out.why, out.lines = (judged.verdicts, judged.choice.entry, judged.choice.why,
                                                       judged.lines())
        if seen.figures is not None:
            measuring.append_probe_gaps(self.cfg, step_figures.gap_rows([step], seen.figures))
        self._append(out)

    def _append(self, out: Measured) -> None:
        path = self.cfg.reports_path / "faults.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        done = json.loads(path.read_text()) if path.is_file() else []
        entry = {"step": out.step.to_json() if out.step else None, "budget_entry": out.entry,
                 "budget_why": out.why, "bgp_drops": [d.to_json() for d in out.drops],
                 "budgets": [v.to_json() for v in out.verdicts]}
        path.write_text(json.dumps([*done, entry], indent=2) + "\n")

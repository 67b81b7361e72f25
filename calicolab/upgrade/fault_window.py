"""A fault measured like an upgrade step: the disruption probes (UDP every 10 ms both ways, one
TCP connection) and the route monitors run across the fault tests; each fault's window gets the
step figures (longest gap per direction, lost, reorders, reconnects, route back) and is judged
against its budgets (budgets.yaml: bird-kill, felix-kill), into <reports>/faults.json and the
run page's probe gaps."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from calicolab.core.config import ClusterConfig
from calicolab.core.remote import Node
from calicolab.stack import disruption
from calicolab.upgrade import budgets as budget_rules
from calicolab.upgrade import steps as step_figures
from calicolab.upgrade.rehearsal import LOG_SLACK, append_probe_gaps, steps_table
from calicolab.upgrade.upgrader import Hop


@dataclass
class Measured:
    step: step_figures.StepFigures | None = None
    verdicts: list[budget_rules.Verdict] = field(default_factory=list)
    table: str = ""
    under: str = ""  # a condition seen during the fault (set inside the block): its budgets entry applies
    drops: int = 1  # under recovery-session-lost: sessions dropped (its outage figures are per drop)
    entry: str = ""  # the budgets entry the figures were checked against
    # Figures of the whole fault measured by the test itself (set inside the block), e.g.
    # icmp_lost from its background ping: checked against the same entry as the probes' figures.
    whole: dict[str, float | int | None] = field(default_factory=dict)

    @property
    def over(self) -> list[budget_rules.Verdict]:
        return [v for v in self.verdicts if not v.ok]


class FaultProbes:
    """Probes between two nodes' blocks for as long as the fault tests run."""

    def __init__(self, cfg: ClusterConfig, nodes: Sequence[Node], blocks: Sequence[str]) -> None:
        self.cfg = cfg
        self.nodes = list(nodes)
        self.probes = disruption.start(self.nodes, blocks, prefix="flt-probe")
        disruption.start_route_monitors(self.nodes)
        self.budgets = budget_rules.load()

    def close(self) -> None:
        disruption.stop(self.probes)

    @contextlib.contextmanager
    def window(self, kind: str, node: str, what: str) -> Iterator[Measured]:
        """Measure what happens inside the block; the figures are filled in on leaving it."""
        out = Measured()
        since = time.time()
        hop = Hop(kind, node, "", "", started=round(since, 3))
        try:
            yield out
        finally:
            end = time.time()
            hop.ended = round(end, 3)
            raw = disruption.read(self.probes, end - LOG_SLACK, since)
            figures = disruption.figures(raw)
            step = step_figures.build([hop], figures, None, end)[0]
            step.step = what
            out.step = step
            out.table = steps_table([step])
            out.verdicts = budget_rules.check([step], kind, out.whole, *self.budgets, what, under=out.under,
                                              drops=out.drops)
            out.entry = budget_rules.entry(self.budgets[0], kind, out.under)
            append_probe_gaps(self.cfg, step_figures.gap_rows([step], figures))
            self._append(out)

    def _append(self, out: Measured) -> None:
        path = self.cfg.reports_path / "faults.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        done = json.loads(path.read_text()) if path.is_file() else []
        entry = {"step": out.step.to_json() if out.step else None, "budget_entry": out.entry,
                 "budgets": [v.to_json() for v in out.verdicts]}
        path.write_text(json.dumps([*done, entry], indent=2) + "\n")

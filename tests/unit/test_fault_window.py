"""A fault's window measured by the disruption probes and judged by budgets.yaml: clean records
pass, a hole in one direction fails the zero-loss budget, and the figures land in faults.json."""

from __future__ import annotations

import json
import time

from calicolab.core import config
from calicolab.stack import disruption
from calicolab.upgrade import budgets as budget_rules
from calicolab.upgrade import fault_window

IV = disruption.INTERVAL


def _udp(t0: float, seqs) -> str:
    return "".join(f"1 {s} {int((50 + s * IV) * 1e9)} {int((t0 + s * IV) * 1e9)} {int((60 + s * IV) * 1e9)}\n"
                   for s in seqs)


def _probes(tmp_path, raw_udp: dict[str, str]) -> fault_window.FaultProbes:
    fp = object.__new__(fault_window.FaultProbes)  # no nodes: the records are handed in below
    fp.cfg = config.load({"reports_dir": str(tmp_path)}, environ={})
    fp.probes, fp.nodes = [], []
    fp.budgets = budget_rules.load()
    fp._raw = raw_udp
    return fp


def test_a_clean_window_passes_and_a_hole_fails_the_zero_loss_budget(tmp_path, monkeypatch):
    t0 = time.time()
    n = 300
    clean = {"node1->node2": _udp(t0, range(n)), "node2->node1": _udp(t0, range(n))}
    holed = {"node1->node2": _udp(t0, [*range(100), *range(150, n)]), "node2->node1": _udp(t0, range(n))}
    for records, over in ((clean, []), (holed, ["lost_packets"])):
        def read(_probes, now, since, records=records):
            return disruption.Raw(udp=records, tcp={"node1->node2": "", "node2->node1": ""},
                                  routes={"node1": "", "node2": ""}, blocks={}, until=t0 + n * IV, since=t0)
        monkeypatch.setattr(disruption, "read", read)
        fp = _probes(tmp_path, records)
        with fp.window("bird-kill", "node1", "kill -9 bird on node1") as measured:
            pass
        assert [v.measure for v in measured.over] == over, [v.line() for v in measured.verdicts]
        assert {v.measure for v in measured.verdicts} == {"lost_packets", "tcp_reconnects", "route_back_s"}
    entries = json.loads((tmp_path / "faults.json").read_text())
    assert [e["step"]["lost_packets"] for e in entries] == [0, 50]
    assert json.loads((tmp_path / "probes.json").read_text())[0]["lost"] == 50

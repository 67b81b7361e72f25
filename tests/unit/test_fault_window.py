"""A fault's window measured by the disruption probes and judged by budgets.yaml: clean records
pass, a hole in one direction fails the zero-loss budget, the figures land in faults.json, the
BGP sessions dropped in the window (from both nodes' BIRD logs) choose the entry, and
CALICOLAB_BUDGETS is the file judged by."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from calicolab.core import config
from calicolab.measure import bgp_watch, fault_window
from calicolab.stack import disruption, parsers

FIXTURES = Path(__file__).parent / "fixtures" / "bird_collision"

IV = disruption.INTERVAL


def _udp(t0: float, seqs) -> str:
    return "".join(f"1 {s} {int((50 + s * IV) * 1e9)} {int((t0 + s * IV) * 1e9)} {int((60 + s * IV) * 1e9)}\n"
                   for s in seqs)


def _reads(monkeypatch, records: dict[str, str], t0: float, n: int) -> None:
    """disruption.read answers the window with these UDP records over n intervals from t0, no
    TCP lines and no route changes."""
    monkeypatch.setattr(disruption, "read", lambda *_: disruption.Raw(
        udp=records, tcp={"node1->node2": "", "node2->node1": ""}, routes={"node1": "", "node2": ""},
        blocks={}, until=t0 + n * IV, since=t0))


class HeldWatch:
    """A stand-in for the pass's BIRD debug watch: the nodes' BIRD logs over a window are `bird`
    (node -> lines); it counts what the pass asked of it."""

    def __init__(self, *_cfg_and_nodes) -> None:
        self.bird: dict[str, str] = {}
        self.started = self.checked = self.restored = 0

    def start(self, wait: bool = True) -> None:
        assert not wait, "the pass asks for debug without waiting; a window waits for it"
        self.started += 1

    def in_effect(self) -> None:
        self.checked += 1

    def read(self) -> list[parsers.BgpDrop]:
        return parsers.bgp_drops(self.bird)

    def restore(self) -> None:
        self.restored += 1


def _probes(tmp_path, raw_udp: dict[str, str], monkeypatch=None, bird: dict[str, str] | None = None,
            budgets: str | None = None) -> fault_window.FaultProbes:
    """A FaultProbes without nodes: disruption.read is patched by the test; the nodes' BIRD logs
    over the window are `bird` (node -> lines), read through a stand-in for the debug watch. With
    `budgets` (and monkeypatch) it is made as the fault pass makes it, from a run configuration
    whose `budgets` setting is that file."""
    if monkeypatch is not None:
        monkeypatch.setattr(bgp_watch, "BgpWatch", HeldWatch)
    if budgets is not None:
        monkeypatch.setattr(disruption, "start", lambda *_a, **_k: ["probe-a", "probe-b"])
        fp = fault_window.FaultProbes(config.load({"reports_dir": str(tmp_path), "budgets": budgets}, environ={}),
                                      [], [])
    else:
        fp = object.__new__(fault_window.FaultProbes)
        fp.cfg = config.load({"reports_dir": str(tmp_path)}, environ={})
        fp.probes, fp.nodes = ["probe-a", "probe-b"], []  # read() is patched: the probes are never asked
        fp.budgets = fault_window.budget_rules.load()
        fp.bgp = HeldWatch()
    fp.bgp.bird = bird or {}
    fp._raw = raw_udp
    return fp


def test_a_clean_window_passes_and_a_hole_fails_the_zero_loss_budget(tmp_path, monkeypatch):
    t0 = time.time()
    n = 300
    clean = {"node1->node2": _udp(t0, range(n)), "node2->node1": _udp(t0, range(n))}
    holed = {"node1->node2": _udp(t0, [*range(100), *range(150, n)]), "node2->node1": _udp(t0, range(n))}
    for records, over in ((clean, []), (holed, ["longest_gap_s", "lost_packets"])):
        def read(_probes, now, since, records=records):
            return disruption.Raw(udp=records, tcp={"node1->node2": "", "node2->node1": ""},
                                  routes={"node1": "", "node2": ""}, blocks={}, until=t0 + n * IV, since=t0)
        monkeypatch.setattr(disruption, "read", read)
        fp = _probes(tmp_path, records, monkeypatch)
        with fp.window("bird-kill", "node1", "kill -9 bird on node1") as measured:
            measured.whole["icmp_lost"] = 0  # the test's own ping, set inside the window
        assert sorted(v.measure for v in measured.over) == over, [v.line() for v in measured.verdicts]
        assert {v.measure for v in measured.verdicts} == {"longest_gap_s", "lost_packets", "tcp_reconnects",
                                                          "route_back_s", "icmp_lost"}
    entries = json.loads((tmp_path / "faults.json").read_text())
    assert [e["step"]["lost_packets"] for e in entries] == [0, 50]
    assert json.loads((tmp_path / "probes.json").read_text())[0]["lost"] == 50


def test_a_datagram_lost_alone_is_no_outage_but_a_run_of_them_is(tmp_path, monkeypatch):
    # The CI run of 2026-12-02: one datagram missing in one direction (10 ms), no route change.
    # A gap of 6 intervals (60 ms) is an outage the strict entry refuses, as are 6 lost apart.
    t0 = time.time()
    n = 1000
    cases = (([500], []), ([*range(500, 506)], ["longest_gap_s", "lost_packets"]),
             ([100, 250, 400, 550, 700, 850], ["lost_packets"]))
    for missing, over in cases:
        records = {"node1->node2": _udp(t0, range(n)),
                   "node2->node1": _udp(t0, [s for s in range(n) if s not in missing])}
        _reads(monkeypatch, records, t0, n)
        with _probes(tmp_path, records, monkeypatch).window("bird-kill", "node1", "kill -9 bird on node1") as measured:
            measured.whole["icmp_lost"] = 0
        assert measured.step.lost_packets == len(missing)
        assert sorted(v.measure for v in measured.over) == over, [v.line() for v in measured.verdicts]


def _bird(tag: str) -> dict[str, str]:
    return {n: (FIXTURES / f"{tag}-{n}.log").read_text() for n in ("node1", "node2")}


def test_the_tests_own_ping_loss_is_judged_with_the_window_and_by_its_entry(tmp_path, monkeypatch):
    # Stop 19's CI: 21 pings lost while the first new session was dropped. With a collision in the
    # BIRD logs (B-12: shape B) the window judges by `bird-kill under bgp-collision`; the ping
    # follows the same entry, and with a clean restart in the logs (C-05) the strict one fails it.
    t0 = time.time()
    records = {"node1->node2": _udp(t0, range(300)), "node2->node1": _udp(t0, range(300))}
    _reads(monkeypatch, records, t0, 300)
    for tag, entry, over in (("C-05", "bird-kill", ["icmp_lost"]), ("B-12", "bird-kill under bgp-collision", [])):
        fp = _probes(tmp_path, records, monkeypatch, _bird(tag))
        with fp.window("bird-kill", "node1", "kill -9 bird on node1") as measured:
            measured.whole["icmp_lost"] = 21
        assert [v.measure for v in measured.over] == over, [v.line() for v in measured.verdicts]
        assert measured.entry == entry
    with _probes(tmp_path, records, monkeypatch).window("bird-kill", "node1", "kill -9 bird on node1") as measured:
        pass  # a test that forgot to hand its ping in is not judged as clean
    assert [v.line() for v in measured.over] == ["kill -9 bird on node1: icmp_lost not measured (budget 1)"]
    # faults.json shows each drop with its shape and BIRD's lines.
    shown = [e for e in json.loads((tmp_path / "faults.json").read_text()) if e["bgp_drops"]]
    assert [(d["node"], d["shape"]) for e in shown for d in e["bgp_drops"]] == [("node1", "B")]
    assert any(line.endswith("Received: Connection collision resolution") for line in shown[0]["bgp_drops"][0]["lines"])
    assert shown[0]["budget_entry"] == "bird-kill under bgp-collision" and "1183be5" in shown[0]["budget_why"]


def test_a_route_replaced_by_delete_then_add_is_no_outage_but_a_withdrawn_one_is(tmp_path, monkeypatch):
    # BIRD 1.6 replaces a kernel route by deleting and adding it (CI, 2026-12-03: gone for 1 ms);
    # a route withdrawn for 200 ms is an outage of the peer's block.
    t0 = time.time()
    n = 300
    records = {"node1->node2": _udp(t0, range(n)), "node2->node1": _udp(t0, range(n))}
    route = "192.168.166.128/26 via 192.168.223.131 dev eth1 proto bird"

    def monitor(gone_s: float) -> str:
        at = datetime.fromtimestamp(t0 + 1.0)
        back = datetime.fromtimestamp(t0 + 1.0 + gone_s)
        return f"[{at.isoformat()}] Deleted {route}\n[{back.isoformat()}] {route}\n"

    for gone, over in ((0.001, []), (0.2, ["route_back_s"])):
        routes = {"node1": "", "node2": monitor(gone)}
        monkeypatch.setattr(disruption, "read", lambda *_, routes=routes: disruption.Raw(
            udp=records, tcp={"node1->node2": "", "node2->node1": ""}, routes=routes,
            blocks={"node1": "192.168.104.0/26", "node2": "192.168.166.128/26"}, until=t0 + n * IV, since=t0))
        with _probes(tmp_path, records, monkeypatch).window("bird-kill", "node1", "kill -9 bird on node1") as measured:
            measured.whole["icmp_lost"] = 0
        assert measured.step.route_back_s == gone
        assert [v.measure for v in measured.over] == over, [v.line() for v in measured.verdicts]


def test_under_bgp_collision_the_outage_allowance_is_per_dropped_session(tmp_path, monkeypatch):
    # CI, 2026-12-03: the peer dropped three new sessions in a row (4 s apart): 12.35 s gaps both
    # ways, 2471 datagrams and 62 pings lost. One collision's allowance (8 s) refuses that; the
    # three of B-03 allow it; a hold-timer expiry beside them keeps the strict entry.
    t0 = time.time()
    n = 2000
    gap = range(200, 200 + 1235)  # 12.35 s of 10 ms datagrams, both ways
    records = {k: _udp(t0, [s for s in range(n) if s not in gap]) for k in ("node1->node2", "node2->node1")}
    _reads(monkeypatch, records, t0, n)
    hold = dict(_bird("B-03"))
    hold["node2"] += ("2026-12-04_15:58:07.60000 bird: Mesh_192_168_241_131: Error: Hold timer expired\n"
                      "2026-12-04_15:58:07.60003 bird: Mesh_192_168_241_131: BGP session closed\n"
                      "2026-12-04_15:58:07.60005 bird: Mesh_192_168_241_131: State changed to stop\n")
    for bird, entry, over in ((_bird("B-12"), "bird-kill under bgp-collision", ["icmp_lost", "lost_packets"]),
                              (_bird("B-03"), "bird-kill under bgp-collision", []),
                              (hold, "bird-kill", ["icmp_lost", "longest_gap_s", "lost_packets"])):
        with _probes(tmp_path, records, monkeypatch, bird).window("bird-kill", "node1", "kill -9 bird") as measured:
            measured.whole["icmp_lost"] = 62
        assert measured.entry == entry
        assert sorted(v.measure for v in measured.over) == over, [v.line() for v in measured.verdicts]
    assert "Hold timer expired" in measured.why


def test_the_budgets_setting_points_the_fault_pass_at_a_stricter_file(tmp_path, monkeypatch):
    # budgets.yaml lets a killed BIRD cost 5 datagrams (BIRD 1.6 replaces a kernel route by delete
    # then add); a stricter file allows none. The fault pass must judge by the file the run's
    # `budgets` setting names (--budgets, CALICOLAB_BUDGETS), as docs/upgrades.md says.
    t0 = time.time()
    n = 300
    records = {"node1->node2": _udp(t0, [s for s in range(n) if s not in (100, 200, 250)]),
               "node2->node1": _udp(t0, range(n))}
    _reads(monkeypatch, records, t0, n)
    strict = tmp_path / "strict.yaml"
    strict.write_text("bird-kill:\n  lost_packets: 0\n  icmp_lost: 0\n")
    for chosen, over, source in (("budgets.yaml", [], "budgets.yaml"), (str(strict), ["lost_packets"], str(strict))):
        fp = _probes(tmp_path, records, monkeypatch, budgets=chosen)
        with fp.window("bird-kill", "node1", "kill -9 bird") as measured:
            measured.whole["icmp_lost"] = 0
        assert [v.measure for v in measured.over] == over, [v.line() for v in measured.verdicts]
        assert measured.verdicts[0].source.endswith(source)
    assert [v.line() for v in measured.over] == ["kill -9 bird: lost_packets 3 (budget 0)"]


def test_the_pass_holds_bird_at_debug_across_its_windows_and_puts_it_back_once(tmp_path, monkeypatch):
    # One debug wait per pass, not per window: the level is asked for when the probes start (no
    # wait), each window confirms it is in effect (and marks the logs from there), and only the
    # pass's end puts the old level back; a window that restored it would make the next one wait.
    t0 = time.time()
    records = {"node1->node2": _udp(t0, range(300)), "node2->node1": _udp(t0, range(300))}
    _reads(monkeypatch, records, t0, 300)
    stopped: list[list[str]] = []
    monkeypatch.setattr(disruption, "stop", stopped.append)
    fp = _probes(tmp_path, records, monkeypatch, budgets="budgets.yaml")
    held = fp.bgp
    assert (held.started, held.checked, held.restored) == (1, 0, 0)
    for kind, victim in (("bird-kill", "node1"), ("felix-kill", "node1")):
        with fp.window(kind, victim, f"{kind} on {victim}") as measured:
            measured.whole["icmp_lost"] = 0
        assert not measured.over, [v.line() for v in measured.verdicts]
    assert (held.started, held.checked, held.restored) == (1, 2, 0)
    fp.close()
    assert (held.restored, stopped) == (1, [["probe-a", "probe-b"]])

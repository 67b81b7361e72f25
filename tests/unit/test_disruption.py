"""The disruption probe and what is read off it: the real probe program on loopback (a receiver
stopped for 1 s drops datagrams; a peer killed and restarted costs a TCP reconnect), and the
analysis on hand-made records with known gaps, reorders, restarts, route outages and elections."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from calicolab.core.paths import ROOT
from calicolab.core.polling import wait_for
from calicolab.measure import etcd_leader, step_figures
from calicolab.measure.etcd_leader import Sample
from calicolab.measure.step_figures import Hop
from calicolab.report import run_data
from calicolab.stack import disruption
from calicolab.stack.disruption import Packet

PROBE = ROOT / "workloads" / "probe" / "probe.py"
IV = 0.01  # the probe's interval


def _stream(inc: int, seqs, t0: float = 1000.0, interval: float = IV) -> list[Packet]:
    return [Packet(inc, s, 50.0 + s * interval, t0 + s * interval, 60.0 + s * interval) for s in seqs]


def test_a_hole_of_100_datagrams_is_a_one_second_gap():
    fig = disruption.analyze("a->b", _stream(1, [*range(0, 50), *range(150, 200)]))
    assert fig.lost == 100 and fig.received == 100
    assert [(g.seconds, g.lost) for g in fig.gaps] == [(1.0, 100)]
    assert fig.gaps[0].start == pytest.approx(1000.0 + 50 * IV)  # when the first missing one was due


def test_no_hole_no_gap_even_when_the_sender_stalled():
    packets = _stream(1, range(10))
    stalled = [*packets[:5], *[Packet(p.inc, p.seq, p.sent + 2, p.sent_real + 2, p.received + 2)
                               for p in packets[5:]]]
    fig = disruption.analyze("a->b", stalled)
    assert fig.gaps == [] and fig.lost == 0


def _late(inc: int, sends: dict[int, float], t0: float = 1000.0, interval: float = IV) -> dict:
    """late.log entries: seq -> when it was sent (seconds after t0), late against seq x interval."""
    return {(inc, seq): disruption.LateSend(t0 + at, at - seq * interval) for seq, at in sends.items()}


def _sent(inc: int, sends: dict[int, float], t0: float = 1000.0) -> list[Packet]:
    return [Packet(inc, seq, 50.0 + at, t0 + at, 60.0 + at) for seq, at in sends.items()]


def test_a_catch_up_burst_lost_to_an_outage_is_timed_when_it_was_sent():
    # On time to 49; starved 70 ms, then 50..56 go out at once at 0.57 s; on time again after.
    # The outage drops what is sent from 0.565 s to 1.565 s: the burst, then 57..156.
    sends = {seq: seq * IV for seq in range(200)} | {seq: 0.57 for seq in range(50, 57)}
    arrived = {seq: at for seq, at in sends.items() if not 0.565 <= at < 1.565}
    late = _late(1, {seq: at for seq, at in sends.items() if at - seq * IV > IV})
    by_numbers = disruption.analyze("a->b", _sent(1, arrived))  # a probe without late.log
    assert by_numbers.gaps[0].seconds == pytest.approx(1.07)  # the sender's 70 ms counted as outage
    fig = disruption.analyze("a->b", _sent(1, arrived), late=late)
    assert fig.lost == 107 and len(fig.gaps) == 1
    gap = fig.gaps[0]
    assert gap.seconds == pytest.approx(1.0, abs=0.011) and gap.start == pytest.approx(1000.57)
    assert gap.unseen == 0.0


def test_a_sender_silent_inside_an_outage_leaves_that_time_unseen():
    # Dropped from 0.5 s to 1.5 s; the sender sends nothing from 0.99 s to 1.6 s, then catches up:
    # its burst arrives, so the probe saw 0.5 s of loss and 0.6 s it cannot vouch for.
    sends = {seq: seq * IV for seq in range(100)} | {seq: max(seq * IV, 1.6) for seq in range(100, 250)}
    arrived = {seq: at for seq, at in sends.items() if not 0.5 <= at < 1.5}
    late = _late(1, {seq: at for seq, at in sends.items() if at - seq * IV > IV})
    gap = disruption.analyze("a->b", _sent(1, arrived), late=late).gaps[0]
    assert (gap.lost, gap.seconds, gap.unseen) == (50, pytest.approx(0.5), pytest.approx(0.6))
    assert gap.seconds <= 1.0 <= gap.seconds + gap.unseen


def test_a_sender_over_a_second_behind_starts_its_schedule_again():
    # 50 goes out 1.5 s late at 2.0 s; the schedule starts again from it (51 due at once, at 2.0 s).
    sends = {seq: seq * IV for seq in range(50)} | {seq: 2.0 + (seq - 51) * IV for seq in range(51, 200)}
    sends[50] = 2.0
    arrived = {seq: at for seq, at in sends.items() if not 2.0 <= at < 2.5}  # 50..100 dropped
    gap = disruption.analyze("a->b", _sent(1, arrived), late=_late(1, {50: 2.0})).gaps[0]
    assert gap.lost == 51 and gap.start == pytest.approx(1002.0)
    assert gap.seconds == pytest.approx(0.5, abs=0.011)


def test_the_late_log_parser_drops_a_torn_line():
    late = disruption.parse_late("1 50 1000570000000 70000000\n1 51 10005")
    assert late == {(1, 50): disruption.LateSend(1000.57, 0.07)}


class _ContainerNode:
    """A node whose `docker exec NAME cmd...` runs cmd in this machine's sh, the probe's folder a
    local one; counts the commands sent per container."""

    def __init__(self, name: str) -> None:
        self.name, self.execs = name, {}

    def run(self, cmd: str, timeout: float = 120):
        words = cmd.split(" ", 3)
        if words[:2] == ["docker", "exec"]:
            self.execs[words[2]] = self.execs.get(words[2], 0) + 1
            cmd = words[3]
        return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=timeout)


def test_each_senders_tcp_and_late_logs_come_back_whole_from_one_exec(tmp_path, monkeypatch):
    monkeypatch.setattr(disruption, "DIR", str(tmp_path / "probe"))
    monkeypatch.setattr(disruption, "ROUTE_LOG", str(tmp_path / "routes.log"))
    (tmp_path / "probe").mkdir()
    # Both probes log into the one local folder: a's files are also b's, so a direction's udp.log
    # is the one folder's too. The tcp.log ends in a torn line; late.log may be missing.
    (tmp_path / "probe" / "udp.log").write_text("0 1 2 3 4\n")
    (tmp_path / "probe" / "tcp.log").write_text("start 1 0\nconnect 2\necho 3 4")
    a, b = (disruption.Probe(n, _ContainerNode(f"node{i}"), "192.168.0.1", "192.168.0.0/26")
            for i, n in ((1, "pa"), (2, "pb")))
    raw = disruption.read([a, b], now=10.0)
    torn = "start 1 0\nconnect 2\necho 3 4"
    assert raw.tcp == {"node1->node2": torn, "node2->node1": torn}
    assert raw.late == {"node1->node2": "", "node2->node1": ""}
    # Per direction: the receiver's udp.log, then the sender's two logs in one exec.
    assert a.node.execs.get("pa") == 2 and b.node.execs.get("pb") == 2, (a.node.execs, b.node.execs)
    (tmp_path / "probe" / "late.log").write_text("0 5 1000 20000000\n")
    raw = disruption.read([a, b], now=10.0)
    assert raw.late["node1->node2"] == "0 5 1000 20000000\n"
    assert raw.tcp["node1->node2"] == torn


def test_late_and_duplicate_datagrams():
    packets = _stream(1, range(10))
    arrival = [*packets[:3], packets[4], packets[3], *packets[5:], packets[9]]
    fig = disruption.analyze("a->b", arrival)
    assert (fig.reorders, fig.duplicates, fig.lost, fig.gaps) == (1, 1, 0, [])


def test_a_restarted_sender_is_an_outage_from_its_last_datagram_to_its_new_first():
    first = _stream(1, range(100))  # sent 1000.00 .. 1000.99
    second = _stream(2, range(3, 50), t0=1003.0)  # a new life 2 s later; its first 3 lost
    fig = disruption.analyze("a->b", first + second)
    assert len(fig.gaps) == 1
    assert fig.gaps[0].seconds == pytest.approx(1003.03 - 1000.99 - IV, abs=1e-6)
    assert fig.gaps[0].lost == 3


def test_a_gap_still_open_when_the_logs_are_read_runs_to_then():
    fig = disruption.analyze("a->b", _stream(1, range(100)), until=1002.0)
    assert len(fig.gaps) == 1 and fig.gaps[0].seconds == pytest.approx(1.0, abs=0.011)
    assert disruption.analyze("a->b", _stream(1, range(100)), until=1000.99 + 2 * IV).gaps == []


def test_the_log_parser_drops_a_torn_last_line():
    text = "1 0 10 20 30\n1 1 11 21 31\n1 2 1"
    assert [p.seq for p in disruption.parse_udp(text)] == [0, 1]


def test_route_outages_from_ip_monitor():
    text = ("[2026-12-01T22:31:05.100000] 192.168.104.0/26 via 192.168.223.130 dev eth1 proto bird\n"
            "[2026-12-01T22:31:06.000000] Deleted 192.168.104.0/26 via 192.168.223.130 dev eth1 proto bird\n"
            "[2026-12-01T22:31:06.500000] Deleted 192.168.166.128/26 dev cali1 scope link\n"
            "[2026-12-01T22:31:08.250000] 192.168.104.0/26 via 192.168.223.130 dev eth1 proto bird\n")
    outages = disruption.parse_route_monitor("node1", text, "192.168.104.0/26", until=0)
    assert [o.seconds for o in outages] == [2.25]
    still = disruption.parse_route_monitor("node1", text.rsplit("\n", 2)[0], "192.168.104.0/26",
                                           until=outages[0].start + 5)
    assert [o.seconds for o in still] == [5.0]


def test_reconnects_are_the_connections_after_the_first():
    events = disruption.parse_tcp("start 1000000000000 1\nconnect 1000500000000\nbroken 1010000000000 EOF\n"
                                  "start 1012000000000 2\nconnect 1012300000000\n")
    assert disruption.reconnect_times(events) == [1010.0]  # dated by the break that caused it


def test_a_reconnect_is_charged_to_the_step_that_broke_the_connection():
    # As recorded in a Docker rehearsal (seconds after 1796173000): node1's hop ran 172.954 to
    # 200.25, node2's 200.251 to 224.335; each reconnect lands ~0.2 s after its hop returned.
    a_b = disruption.parse_tcp("start 169923488590 1\nconnect 171274220179\nstart 199439303236 2\n"
                               "connect 200457810262\nbroken 200492157633 ConnectionResetError\n"
                               "connect 224552900730\n")
    b_a = disruption.parse_tcp("start 170262915180 1\nconnect 171274560046\nbroken 173250557445 ConnectionError\n"
                               "connect 200456860764\nstart 223546352388 2\nconnect 224552866345\n")
    times = disruption.reconnect_times(a_b) + disruption.reconnect_times(b_a)
    node1 = [t for t in times if 172.954 <= t < 200.25]
    node2 = [t for t in times if 200.251 <= t < 224.335]
    assert (len(node1), len(node2)) == (2, 2), times


def test_leader_changes_and_time_without_a_leader():
    samples = [Sample(t, m, ld, term, ok) for t, m, ld, term, ok in [
        (0.0, "n1", "A", 2, True), (0.0, "n2", "A", 2, True),
        (1.0, "n1", "", 0, False), (1.05, "n2", "A", 2, True),  # n1 down, n2 still follows A
        (2.0, "n2", "", 3, True),  # n2 a candidate: nobody names a leader from here
        (4.0, "n1", "B", 4, True), (4.1, "n2", "B", 4, True)]]
    fig = etcd_leader.analyze(samples)
    assert fig.changes == [4.0]
    assert fig.leaderless == [(2.0, 4.0)]
    assert fig.leaderless_in(3.0, 10.0) == 1.0 and fig.changes_in(0, 3.0) == 0



def test_a_new_leader_read_with_its_old_term_is_one_election_not_two():
    # As seen in a rehearsal: node1 (A) hands the leadership to node2 (B) on stopping; one
    # Status read named B with the old term 2, the next 0.1 s later B with term 3.
    samples = [Sample(t, m, ld, term, ok) for t, m, ld, term, ok in [
        (0.0, "n1", "A", 2, True), (0.0, "n2", "A", 2, True),
        (0.3, "n1", "", 0, False), (0.37, "n2", "B", 2, True), (0.47, "n2", "B", 3, True),
        (2.3, "n2", "", 3, True),  # B alone has no quorum and steps down
        (21.3, "n1", "B", 16, True), (21.4, "n2", "B", 16, True)]]
    fig = etcd_leader.analyze(samples)
    assert fig.changes == [0.47, 21.3], fig.changes
    # The broken rule (every new (leader, term) pair) would count three.
    assert len({(s.leader, s.term) for s in samples if s.leader}) - 1 == 3


def test_the_same_leader_re_elected_after_stepping_down_is_an_election():
    samples = [Sample(t, m, ld, term, ok) for t, m, ld, term, ok in [
        (0.0, "n1", "A", 2, True), (1.5, "n1", "", 2, True), (3.0, "n1", "A", 4, True)]]
    assert etcd_leader.analyze(samples).changes == [3.0]

def _hop(component: str, node: str, started: float, ended: float, bgp: float | None = None,
         restarts_workloads: bool = False) -> Hop:
    return Hop(component, node, "a", "b", round(ended - started, 1), "", started, ended, bgp,
               restarts_workloads=restarts_workloads)


def test_steps_take_the_gaps_that_start_in_their_window():
    t0 = 1000.0
    a_b = _stream(1, [*range(0, 300), *range(350, 1000)])  # a gap at 1003.00, in the second hop
    b_a = _stream(1, range(1000))
    figures = disruption.Figures(directions={"a->b": disruption.analyze("a->b", a_b),
                                             "b->a": disruption.analyze("b->a", b_a)},
                                 reconnects={"a->b": [1006.0], "b->a": []})
    hops = [_hop("docker", "node1", t0 + 1, t0 + 2, restarts_workloads=True),
            _hop("docker", "node2", t0 + 2.5, t0 + 3.2, restarts_workloads=True)]
    out = step_figures.build(hops, figures, None, t0 + 10)
    assert [s.lost_packets for s in out] == [0, 50]
    assert out[1].longest_gap_s == {"a->b": 0.5, "b->a": 0.0}
    assert out[1].tcp_reconnects == 1
    # node2's hop restarts its workloads until 1003.2: 0.3 s of the 0.5 s gap is outside it.
    assert out[1].gap_outside_restart_s == pytest.approx(0.3, abs=0.011)
    # A hop that keeps its workloads running owns no outage: the whole gap counts.
    kept = step_figures.build([replace(h, restarts_workloads=False) for h in hops], figures, None, t0 + 10)
    assert kept[1].gap_outside_restart_s == pytest.approx(0.5, abs=0.011)
    assert out[1].leader_changes is None  # no watcher, no figure (a budget on it then fails)


# -- the real probe program, two of them on loopback ---------------------------------------------
def _ephemeral_range() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def _free_ports(n: int) -> list[int]:
    """n ports free for both UDP and TCP, below the ephemeral range. A port the kernel hands out
    to outgoing connections can be taken before the probe binds it: drawn there (as UDP-free
    only), a CI run's b could not listen on its TCP port (its UDP flowed, a's tcp.log never said
    `connect`), and a's own connects to a port nobody listens on can land on that very port
    (a TCP self-connect)."""
    ephemeral = _ephemeral_range()
    ports: list[int] = []
    outside = [port for port in range(10000, 65536) if port not in ephemeral]
    for port in random.sample(outside, min(200, len(outside))):
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the probe binds
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise AssertionError(f"fewer than {n} free ports below the ephemeral range {ephemeral}")


def _probe(folder: Path, udp: int, tcp: int, peer_udp: int, peer_tcp: int, rcvbuf: int = 0) -> subprocess.Popen:
    args = [sys.executable, str(PROBE), "--peer", "127.0.0.1", "--bind", "127.0.0.1", "--udp-port", str(udp),
            "--tcp-port", str(tcp), "--peer-udp-port", str(peer_udp), "--peer-tcp-port", str(peer_tcp),
            "--interval", str(IV), "--dir", str(folder)]
    if rcvbuf:
        args += ["--rcvbuf", str(rcvbuf)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _lines(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.fixture
def pair(tmp_path):
    ua, ub, ta, tb = _free_ports(4)
    da, db = tmp_path / "a", tmp_path / "b"
    a = _probe(da, ua, ta, ub, tb)
    b = _probe(db, ub, tb, ua, ta, rcvbuf=1)  # the kernel's smallest buffer: a stopped b drops datagrams
    procs = {"a": a, "b": b}
    try:
        wait_for(lambda: (_lines(db / "udp.log"), _lines(da / "tcp.log")), lambda t: t[0] and "connect" in t[1],
                 "loopback probes exchanging", timeout=20)
        yield procs, da, db, (ua, ub, ta, tb)
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


def test_the_probe_program_measures_a_stopped_receiver_and_counts_a_reconnect(pair):
    procs, da, db, (ua, ub, ta, tb) = pair
    b = procs["b"]
    os.kill(b.pid, signal.SIGSTOP)
    stopped = time.time()
    time.sleep(1.0)  # the fault itself: b takes nothing off its socket for 1 s
    os.kill(b.pid, signal.SIGCONT)
    resumed = time.time()
    wait_for(lambda: disruption.parse_udp(_lines(db / "udp.log")), lambda ps: ps[-1].sent_real > resumed + 0.2,
             "b taking datagrams again", timeout=20)
    # b's sender was stopped as well: its first datagram after is about 1 s late, and says so.
    wait_for(lambda: disruption.parse_late(_lines(db / "late.log")), lambda late: any(
        x.late >= 0.9 and stopped < x.sent_real < resumed + 0.5 for x in late.values()), "b's late send", timeout=5)
    # Then b is killed and started again (a restarted workload): a new incarnation, a new connection.
    b.send_signal(signal.SIGTERM)
    b.wait(timeout=10)
    procs["b"] = _probe(db, ub, tb, ua, ta, rcvbuf=1)
    wait_for(lambda: _lines(da / "tcp.log").count("connect"), lambda n: n >= 2, "a's reconnect", timeout=20)
    wait_for(lambda: disruption.parse_udp(_lines(db / "udp.log")), lambda ps: ps[-1].sent_real > time.time() - 0.5,
             "b receiving again after its restart", timeout=20)
    a_to_b = disruption.analyze("a->b", disruption.parse_udp(_lines(db / "udp.log")), IV)
    # The stop: 1 s less the few datagrams the smallest buffer still held.
    big = [g for g in a_to_b.gaps if g.seconds > 0.5]
    assert len(big) == 1, a_to_b.gaps
    assert 0.85 <= big[0].seconds <= 1.05 and abs(big[0].start - stopped) < 0.1, big[0]
    assert big[0].lost == pytest.approx(big[0].seconds / IV, abs=3)
    # The restart takes tens of milliseconds, which a loaded host's scheduler can hide from a
    # sender that then catches up: shown by the new incarnation and the reconnect instead.
    assert (db / "incarnation").read_text().strip() == "2"
    assert len(disruption.reconnect_times(disruption.parse_tcp(_lines(da / "tcp.log")))) >= 1


def test_probe_gaps_written_with_wall_clock_times_land_on_the_run_timeline(tmp_path):
    started = time.time() - 10
    (tmp_path / "probes.json").write_text(
        f'[{{"step": "etcd 3.3.25->3.4.23 on node1", "direction": "node1->node2", "at": {started + 3.5}, '
        '"seconds": 1.0, "lost": 100}]')
    data = run_data.collect(tmp_path, {"started": started, "stages": []})
    assert data["probe_gaps"][0]["start"] == 3.5 and "probes.json" in data["sources"]


def test_records_from_before_the_upgrade_started_do_not_count():
    # Seen on the lab: a probe's first datagrams wait for ARP and arrive after later ones.
    packets = _stream(1, range(200))
    arrival = [*packets[100:103], *packets[:100], *packets[103:]]
    text = "".join(f"{p.inc} {p.seq} {int(p.sent * 1e9)} {int(p.sent_real * 1e9)} {int(p.received * 1e9)}\n"
                   for p in arrival)
    late = disruption.figures(disruption.Raw(udp={"a->b": text}))
    assert late.directions["a->b"].reorders == 100
    since = disruption.figures(disruption.Raw(udp={"a->b": text}, since=packets[110].sent_real))
    assert since.directions["a->b"].reorders == 0 and since.directions["a->b"].received == 90

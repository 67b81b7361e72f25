"""Disruption probes between workloads on two nodes, and what they measured.

A probe container per node (workloads/probe/probe.py in the project's probe image) on a Calico
network of its own, each sending a numbered UDP datagram to the other every INTERVAL seconds
and holding one TCP connection to it. The containers get fixed addresses inside their node's
IPAM block (`docker run --ip`), so one that Docker restarts comes back at the same address and
its peer's datagrams reach it again. Beside them, `ip -ts monitor route` on every node logs when
the peer's block route goes away and comes back.

What is read back (pure functions, unit-tested): per direction the gaps (a hole in the numbers
is that many intervals without traffic; a restarted sender's silence is timed by its clock),
datagrams lost, reordered; per TCP client the reconnects; per node the route outages.
`blackhole` drops one direction's workload traffic for a set time inside the receiving
workload's network namespace (the node's iptables through nsenter, away from Calico's chains),
which is how the probe's resolution is proven and how a budget is made to fail on purpose.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from calicolab.core.errors import UserError
from calicolab.core.paths import IMAGE_NAMESPACE
from calicolab.core.polling import Timeout, wait_for
from calicolab.core.remote import Node, in_parallel
from calicolab.stack import etcd_query, node_images, workloads

IMAGE = "calicolab-probe:latest"  # the name on the nodes; the project builds <namespace>/probe:debian
NETWORK = "upgprobe"
UDP_PORT, TCP_PORT = 7001, 7002
INTERVAL = 0.01  # seconds between datagrams, each direction: 10 ms resolution
DIR = "/probe"
LATE_MARK = "@@calicolab-late.log"  # between tcp.log and late.log when read together (numbers and words only)
ROUTE_LOG = "/tmp/calicolab-routes.log"
ROUTE_PID = "/tmp/calicolab-routes.pid"
ADDRESS_OFFSET = 63  # the probe's address: the last of its node's /26 block, far from the first-free ones


# -- what the probe logs ------------------------------------------------------------------------
@dataclass(frozen=True)
class Packet:
    inc: int  # the sender's incarnation (its container's start count)
    seq: int
    sent: float  # sender's monotonic clock, seconds
    sent_real: float  # sender's wall clock, seconds since the epoch
    received: float  # receiver's monotonic clock


@dataclass(frozen=True)
class Gap:
    direction: str
    start: float  # wall clock: when the first missing datagram was sent
    seconds: float
    lost: int
    # Sender's silence at the gap's end: after its last lost datagram it sent nothing for this long
    # (starved), so the outage may have lasted up to seconds + unseen.
    unseen: float = 0.0


@dataclass(frozen=True)
class LateSend:
    """A datagram its sender sent more than one interval after it was due (probe.py's late.log)."""
    sent_real: float  # sender's wall clock
    late: float  # seconds after it was due


@dataclass
class DirectionFigures:
    direction: str
    received: int = 0
    lost: int = 0
    reorders: int = 0
    duplicates: int = 0
    gaps: list[Gap] = field(default_factory=list)
    reorder_times: list[float] = field(default_factory=list)  # wall clock of each late datagram


def parse_udp(text: str) -> list[Packet]:
    """probe.py's udp.log, in arrival order; a torn last line (read while being written) is dropped."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 5 or not all(p.isdigit() for p in parts):
            continue
        inc, seq, mono, real, got = (int(p) for p in parts)
        out.append(Packet(inc, seq, mono / 1e9, real / 1e9, got / 1e9))
    return out


def parse_late(text: str) -> dict[tuple[int, int], LateSend]:
    """probe.py's late.log: (incarnation, seq) -> when it was sent and how late; torn lines dropped."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and all(p.isdigit() for p in parts):
            inc, seq, real, late = (int(p) for p in parts)
            out[(inc, seq)] = LateSend(real / 1e9, late / 1e9)
    return out


def _sent_at(inc: int, seq: int, ref: Packet, late: dict[tuple[int, int], LateSend], interval: float) -> float:
    """When datagram `seq` left its sender: logged if it was late; else within one interval of
    when it was due, counted on from the nearest earlier datagram whose sending is known (`ref`,
    received, or a logged late one after it). A sender more than 1 s behind starts its schedule
    again from the next datagram (probe.py), which is then due at once."""
    known = late.get((inc, ref.seq))
    base_seq, base_sent, base_late = ref.seq, ref.sent_real, known.late if known else 0.0
    for k in range(seq, ref.seq, -1):
        if (inc, k) in late:
            if k == seq:
                return late[(inc, k)].sent_real
            base_seq, base_sent, base_late = k, late[(inc, k)].sent_real, late[(inc, k)].late
            break
    if base_late + interval > 1.0:  # the schedule was started again after it
        return base_sent + (seq - base_seq - 1) * interval
    return base_sent - base_late + (seq - base_seq) * interval


def analyze(direction: str, packets: Sequence[Packet], interval: float = INTERVAL,
            until: float | None = None, late: dict[tuple[int, int], LateSend] | None = None) -> DirectionFigures:
    """Gaps, losses and reorders of one direction. `until` (wall clock) closes a gap still open
    at the end: datagrams sent before it should have arrived by the time the log was read.
    `late` (the sender's late.log) times the lost datagrams that were sent late."""
    late = late or {}
    fig = DirectionFigures(direction)
    highest: dict[int, int] = {}
    seen: set[tuple[int, int]] = set()
    for p in packets:  # arrival order: a number below the highest seen arrived late
        if (p.inc, p.seq) in seen:
            fig.duplicates += 1
            continue
        seen.add((p.inc, p.seq))
        if p.seq < highest.get(p.inc, -1):
            fig.reorders += 1
            fig.reorder_times.append(p.sent_real)
        highest[p.inc] = max(highest.get(p.inc, -1), p.seq)
    ordered = sorted({(p.inc, p.seq): p for p in packets}.values(), key=lambda p: (p.inc, p.seq))
    fig.received = len(ordered)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.inc == b.inc:
            lost = b.seq - a.seq - 1
            if lost <= 0:
                continue  # consecutive: a stalled sender skips no number, so it is no outage
        else:
            # The sender restarted (its workload did): the new life numbers from 0, and nothing
            # was sent while it was down, which is outage all the same.
            lost = b.seq
        if a.inc != b.inc:  # across lives, by the sender's clock
            fig.lost += lost
            fig.gaps.append(Gap(direction, round(a.sent_real + interval, 3),
                                round(max(0.0, b.sent_real - a.sent_real - interval), 3), lost))
            continue
        # Within one life, by the numbers: each missing datagram is one interval without traffic
        # (FD.io CSIT's convergence time from loss), spanning from the first lost datagram's
        # sending to the last's. On time, that is lost x interval. A starved sender's catch-up
        # burst lost to the outage is timed by when it went out (late.log), so the sender's own
        # delay before the outage is not counted as outage; its silence after the last lost one
        # (sending nothing, then a burst that arrives) is told apart as unseen.
        first = _sent_at(a.inc, a.seq + 1, a, late, interval)
        last = _sent_at(a.inc, b.seq - 1, a, late, interval)
        seconds = max(interval, last - first + interval)
        fig.lost += lost
        fig.gaps.append(Gap(direction, round(first, 3), round(seconds, 3), lost,
                            round(max(0.0, b.sent_real - last - interval), 3)))
    if ordered and until is not None and until - ordered[-1].sent_real > 3 * interval:
        seconds = until - ordered[-1].sent_real - interval
        lost = int(seconds / interval)
        fig.lost += lost
        fig.gaps.append(Gap(direction, round(ordered[-1].sent_real + interval, 3), round(seconds, 3), lost))
    return fig


@dataclass(frozen=True)
class TcpEvent:
    kind: str  # start | connect | broken | stall
    at: float  # wall clock
    detail: str = ""


def parse_tcp(text: str) -> list[TcpEvent]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("start", "connect", "broken", "stall") and parts[1].isdigit():
            out.append(TcpEvent(parts[0], int(parts[1]) / 1e9, " ".join(parts[2:])))
    return out


def reconnect_times(events: Sequence[TcpEvent]) -> list[float]:
    """Every connection made after the first one (the long-lived connection was lost and re-made,
    also across a restart of the client's own container), dated by the loss that made it
    necessary: the break, or the client's restart, before it. A reconnect lands a moment after
    the step that caused it has returned (the peer's probe comes back last), so its own time would
    charge it to the next step."""
    out, connected, lost_at = [], False, None
    for e in sorted(events, key=lambda e: e.at):
        if e.kind in ("broken", "start") and lost_at is None and (connected or e.kind == "broken"):
            lost_at = e.at
        elif e.kind == "connect":
            if connected:
                out.append(lost_at if lost_at is not None else e.at)
            connected, lost_at = True, None
    return out


@dataclass(frozen=True)
class RouteOutage:
    node: str
    route: str
    start: float  # wall clock
    seconds: float


_ROUTE_LINE = r"^\[(?P<ts>[0-9T:.\-]+)\]\s+(?P<what>Deleted\s+)?(?P<route>.*)$"


def parse_route_monitor(node: str, text: str, block: str, until: float) -> list[RouteOutage]:
    """Outages of the route to `block` from `ip -ts monitor route` (`[2026-12-01T22:31:05.123456]
    Deleted 192.168.104.0/26 via ... proto bird`): from a deletion to the next addition; one
    still open at the end runs to `until`. Times are the node's local time, as the host's."""
    pattern = re.compile(_ROUTE_LINE)
    outages, down_at = [], None
    for line in text.splitlines():
        m = pattern.match(line.strip())
        if not m or m.group("route").split()[:1] != [block]:
            continue
        try:
            at = datetime.fromisoformat(m.group("ts")).timestamp()
        except ValueError:
            continue
        if m.group("what") and down_at is None:
            down_at = at
        elif not m.group("what") and down_at is not None:
            outages.append(RouteOutage(node, block, down_at, round(at - down_at, 3)))
            down_at = None
    if down_at is not None:
        outages.append(RouteOutage(node, block, down_at, round(max(0.0, until - down_at), 3)))
    return outages


# -- on the nodes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    name: str
    node: Node
    ip: str
    block: str


@dataclass
class Raw:
    """What was read back from the nodes, kept as text (the e2e grading re-reads it)."""

    udp: dict[str, str] = field(default_factory=dict)  # direction "node1->node2" -> the receiver's udp.log
    late: dict[str, str] = field(default_factory=dict)  # direction -> the sender's late.log
    tcp: dict[str, str] = field(default_factory=dict)  # client direction -> the client's tcp.log
    routes: dict[str, str] = field(default_factory=dict)  # node -> route monitor log
    blocks: dict[str, str] = field(default_factory=dict)  # node -> the peer block its route log is about
    until: float = 0.0  # wall clock when the logs were read
    interval: float = INTERVAL
    # Wall clock from which the records count. Before it the probes were starting: their first
    # datagrams wait in the kernel's queue for unresolved neighbours (ARP) and come out late.
    since: float = 0.0

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Raw:
        return cls(**{k: data[k] for k in ("udp", "late", "tcp", "routes", "blocks", "until", "interval", "since")
                      if k in data})


@dataclass
class Figures:
    directions: dict[str, DirectionFigures] = field(default_factory=dict)
    reconnects: dict[str, list[float]] = field(default_factory=dict)  # client direction -> times
    stalls: dict[str, list[TcpEvent]] = field(default_factory=dict)
    routes: list[RouteOutage] = field(default_factory=list)


def figures(raw: Raw) -> Figures:
    out = Figures()
    for direction, text in raw.udp.items():
        packets = [p for p in parse_udp(text) if p.sent_real >= raw.since]
        out.directions[direction] = analyze(direction, packets, raw.interval, raw.until,
                                            parse_late(raw.late.get(direction, "")))
    for direction, text in raw.tcp.items():
        events = parse_tcp(text)
        out.reconnects[direction] = [t for t in reconnect_times(events) if t >= raw.since]
        out.stalls[direction] = [e for e in events if e.kind == "stall" and e.at >= raw.since]
    for node, text in raw.routes.items():
        out.routes += [r for r in parse_route_monitor(node, text, raw.blocks.get(node, ""), raw.until)
                       if r.start >= raw.since]
    return out


@dataclass(frozen=True)
class ClockOffset:
    """How far one node's wall clock is ahead of another's, read off the probes' own datagrams
    (NTP's four-timestamp estimate): each direction's quickest datagram bounds the offset from one
    side, so the truth lies within `uncertainty` (half the quickest round trip) of `seconds`."""

    node: str
    reference: str
    seconds: float  # node's wall clock minus the reference's
    uncertainty: float


def clock_offset(raw: Raw, node: str, reference: str) -> ClockOffset | None:
    """`node`'s wall clock against `reference`'s, or None when a direction has no datagram.

    A probe logs the sender's wall clock and the receiver's monotonic clock. The datagrams a node
    sends carry both its clocks, which maps its monotonic clock to its wall clock; with that, each
    direction's least (arrival - departure) is the offset plus that direction's one-way delay,
    and the two directions' difference cancels the delays (as far as they are alike)."""
    there, back = raw.udp.get(f"{reference}->{node}", ""), raw.udp.get(f"{node}->{reference}", "")
    to_node = [p for p in parse_udp(there) if p.sent_real >= raw.since]
    to_ref = [p for p in parse_udp(back) if p.sent_real >= raw.since]
    if not to_node or not to_ref:
        return None
    # Wall minus monotonic, per node, from what it sent (the median shrugs off the odd late stamp).
    wall_of = {node: _median([p.sent_real - p.sent for p in to_ref]),
               reference: _median([p.sent_real - p.sent for p in to_node])}
    ahead = min(p.received + wall_of[node] - p.sent_real for p in to_node)  # offset + delay there
    behind = min(p.received + wall_of[reference] - p.sent_real for p in to_ref)  # -offset + delay back
    return ClockOffset(node, reference, round((ahead - behind) / 2, 4), round(max(0.0, (ahead + behind) / 2), 4))


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def probe_address(block: str) -> str:
    net = ipaddress.ip_network(block)
    return str(net.network_address + min(ADDRESS_OFFSET, net.num_addresses - 1))


def image_source() -> str:
    return f"{IMAGE_NAMESPACE}/probe:debian"


def ensure_image(node: Node) -> None:
    """The probe, copied from the runner over SSH where the node's Docker lacks it: on every
    provider alike (a CentOS 7 VM has nothing but what provisioning brings)."""
    node_images.deliver(node, node_images.probe(IMAGE))


def pool_of(node: Node, block: str) -> str:
    """The Calico pool (CIDR) holding a block, from etcd: the probe network is made on it, since
    Docker lets a container ask for its address only on a network with a configured subnet."""
    res = etcd_query.client_request(node, node.ip, "/v2/keys/calico/v1/ipam/v4/pool")
    net = ipaddress.ip_network(block)
    try:
        names = [n["key"].rsplit("/", 1)[-1] for n in json.loads(res.stdout)["node"].get("nodes", [])]
    except (ValueError, KeyError, TypeError):
        names = []
    for name in names:
        cidr = name.replace("-", "/")
        try:
            pool = ipaddress.ip_network(cidr)
        except ValueError:
            continue
        if isinstance(pool, ipaddress.IPv4Network) and net.subnet_of(pool):
            return cidr
    raise UserError(f"no Calico pool in etcd holds {block} (pools seen: {names or 'none'}): "
                    "is calico-node provisioned?")


def node_block(node: Node) -> str:
    """The node's first affine IPAM block, from etcd (libcalico-go's host affinity keys), e.g.
    192.168.104.0/26; a node that never ran a workload has none."""
    res = etcd_query.client_request(node, node.ip, f"/v2/keys/calico/ipam/v2/host/{node.name}/ipv4/block")
    try:
        names = sorted(n["key"].rsplit("/", 1)[-1] for n in json.loads(res.stdout)["node"].get("nodes", []))
    except (ValueError, KeyError, TypeError):
        names = []
    if not names:
        raise UserError(f"{node.name} has no IPAM block in etcd yet: start a workload there first")
    return names[0].replace("-", "/")


def start(nodes: Sequence[Node], blocks: Sequence[str], prefix: str = "upg-probe") -> list[Probe]:
    """A probe on each of two nodes, each aimed at the other; returns once both directions carry
    datagrams and both TCP connections are up."""
    if len(nodes) != 2:
        raise ValueError("the probe pairs two nodes")
    in_parallel(nodes, ensure_image)  # each node's own connection: the two at once
    workloads.remove(nodes, [f"{prefix}-{n.name}" for n in nodes])
    pool = pool_of(nodes[0], blocks[0])
    if not nodes[0].run(f"docker network inspect {NETWORK} >/dev/null 2>&1").ok:
        nodes[0].run(f"docker network create --driver calico --ipam-driver calico-ipam --subnet {pool} {NETWORK}",
                     check=True, timeout=60)
    probes = [Probe(f"{prefix}-{n.name}", n, probe_address(b), b) for n, b in zip(nodes, blocks, strict=True)]
    peers = {probes[0].node.name: probes[1], probes[1].node.name: probes[0]}
    mine = {p.node.name: p for p in probes}

    def run(node: Node) -> None:
        me, peer = mine[node.name], peers[node.name]
        node.run(f"docker run -d --net {NETWORK} --ip {me.ip} --name {me.name} {IMAGE} "
                 f"--peer {peer.ip} --interval {INTERVAL}", check=True, timeout=120)

    in_parallel(nodes, run)
    wait_ready(probes)
    return probes


def wait_ready(probes: Sequence[Probe], timeout: float = 45) -> None:
    def ready() -> dict[str, bool]:
        return {p.name: p.node.run(f"docker exec {p.name} sh -c 'test -s {DIR}/udp.log && "
                                   f"grep -q ^connect {DIR}/tcp.log'").ok for p in probes}
    try:
        wait_for(ready, lambda s: all(s.values()), "probes exchanging datagrams", timeout=timeout)
    except Timeout as err:
        raise UserError(f"the disruption probes never reached each other (per probe: {err.last}): "
                        "see `docker logs` of the upg-probe containers") from None


def direction(src: Probe, dst: Probe) -> str:
    return f"{src.node.name}->{dst.node.name}"


def start_route_monitors(nodes: Sequence[Node]) -> None:
    for node in nodes:
        stop_route_monitor(node)
        node.run(f"nohup ip -ts monitor route > {ROUTE_LOG} 2>&1 < /dev/null & echo $! > {ROUTE_PID}", check=True)


def stop_route_monitor(node: Node) -> None:
    node.run(f"[ -f {ROUTE_PID} ] && kill $(cat {ROUTE_PID}) 2>/dev/null; rm -f {ROUTE_PID}")


def read(probes: Sequence[Probe], now: float, since: float = 0.0) -> Raw:
    """Every log, read at once; `now` (wall clock) is taken just before (see analyze's until)."""
    raw = Raw(until=now, since=since)
    a, b = probes
    for src, dst in ((a, b), (b, a)):
        raw.udp[direction(src, dst)] = dst.node.run(f"docker exec {dst.name} cat {DIR}/udp.log", timeout=120).stdout
        # The sender's two logs in one exec, apart at a line neither log can hold. A probe image
        # from before late.log has none: its gaps are then counted as before.
        both = src.node.run(f"docker exec {src.name} sh -c " + shlex.quote(
            f"cat {DIR}/tcp.log; echo {LATE_MARK}; cat {DIR}/late.log 2>/dev/null")).stdout
        raw.tcp[direction(src, dst)], _, raw.late[direction(src, dst)] = both.partition(f"{LATE_MARK}\n")
    for me, peer in ((a, b), (b, a)):
        raw.routes[me.node.name] = me.node.run(f"cat {ROUTE_LOG} 2>/dev/null").stdout
        raw.blocks[me.node.name] = peer.block
    return raw


def stop(probes: Sequence[Probe]) -> None:
    for p in probes:
        stop_route_monitor(p.node)
    if probes:
        nodes = [p.node for p in probes]
        workloads.remove(nodes, [p.name for p in probes], NETWORK)


@dataclass(frozen=True)
class Blackhole:
    """When a drop rule went in and came out, by the node's clock, each bracketed: the rule takes
    effect somewhere between `placing` and `placed` (the `iptables -I` call), and stops between
    `removing` and `removed` (`iptables -D`). Under emulation (TCG) an iptables call alone can take
    a few hundred milliseconds, so the drop lasts longer than the sleep between the two calls."""
    placing: float
    placed: float
    removing: float
    removed: float

    @property
    def shortest(self) -> float:
        """The least the drop can have lasted."""
        return self.removing - self.placed

    @property
    def longest(self) -> float:
        """The most the drop can have lasted."""
        return self.removed - self.placing


def blackhole(node: Node, container: str, source_ip: str, seconds: float) -> Blackhole:
    """Drop everything from source_ip arriving in the container's network namespace for `seconds`
    (one direction of workload traffic), and say when the drop rule went in and came out. In the
    workload's own namespace no Calico rule can get ahead of it."""
    rule = f"INPUT -s {source_ip} -j DROP"
    inner = (f"date +%s.%N && iptables -I {rule} && date +%s.%N && sleep {seconds} && "
             f"date +%s.%N && iptables -D {rule} && date +%s.%N")
    res = node.run(f"pid=$(docker inspect -f '{{{{.State.Pid}}}}' {shlex.quote(container)}) && "
                   f"nsenter -t $pid -n sh -c {shlex.quote(inner)}", timeout=seconds + 60)
    if not res.ok:
        node.run(f"pid=$(docker inspect -f '{{{{.State.Pid}}}}' {shlex.quote(container)}) && "
                 f"nsenter -t $pid -n iptables -D {rule}")
        raise UserError(f"blackhole in {container} on {node.name} failed: {res.describe()}")
    return Blackhole(*(float(x) for x in res.stdout.split()[-4:]))


def longest(gaps: Sequence[Gap]) -> float:
    return max((g.seconds for g in gaps), default=0.0)


def in_window(times: Sequence[float], start: float, end: float) -> int:
    ordered = sorted(times)
    return bisect.bisect_left(ordered, end) - bisect.bisect_left(ordered, start)

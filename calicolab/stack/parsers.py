"""Parsers for the outputs the guide shows, by structure (split on ':', '|', JSON), never by
column position."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class EtcdMember:
    member_id: str
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_leader: bool
    started: bool = True


def etcd_member_list_v2(text: str) -> list[EtcdMember]:
    """`ETCDCTL_API=2 etcdctl member list`:
    `afc1b952a7b88713: name=node1 peerURLs=http://... clientURLs=http://... isLeader=true`"""
    members = []
    for line in text.splitlines():
        head, sep, rest = line.strip().partition(": ")
        if not sep:
            continue
        fields = dict(part.split("=", 1) for part in rest.split() if "=" in part)
        started = not head.endswith("[unstarted]")
        members.append(EtcdMember(
            member_id=head.replace("[unstarted]", ""), name=fields.get("name", ""),
            peer_urls=tuple(filter(None, fields.get("peerURLs", "").split(","))),
            client_urls=tuple(filter(None, fields.get("clientURLs", "").split(","))),
            is_leader=fields.get("isLeader") == "true", started=started))
    return members


def etcd_member_list_v3(member_json: str, status_json: str) -> list[EtcdMember]:
    """`etcdctl member list -w json` plus `endpoint status -w json` for the leader. A member with
    no leader (no quorum) has no `leader` in its status: the JSON of etcd's protobuf leaves out a
    field that is 0, and 0 is raft's "none"."""
    members = json.loads(member_json).get("members", [])
    leaders = {str(s.get("Status", {}).get("leader")) for s in json.loads(status_json)} - {"None", "0"}
    return [EtcdMember(member_id=format(int(m["ID"]), "x"), name=m.get("name", ""),
                       peer_urls=tuple(m.get("peerURLs", [])), client_urls=tuple(m.get("clientURLs", [])),
                       is_leader=str(m["ID"]) in leaders, started=bool(m.get("name")))
            for m in members]


@dataclass(frozen=True)
class ClusterHealth:
    verdict: str  # healthy | degraded | unavailable | unknown
    members: dict[str, bool] = field(default_factory=dict)


def etcd_cluster_health_v2(text: str) -> ClusterHealth:
    """`ETCDCTL_API=2 etcdctl cluster-health`."""
    members: dict[str, bool] = {}
    verdict = "unknown"
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"member (\w+) is (healthy|unhealthy|unreachable)", line)
        if m:
            members[m.group(1)] = m.group(2) == "healthy"
        m = re.match(r"cluster is (healthy|degraded|unavailable)", line)
        if m:
            verdict = m.group(1)
    return ClusterHealth(verdict, members)


def docker_info_cluster_store(text: str) -> str | None:
    """`docker info`: the `Cluster Store: etcd://...` line."""
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key.strip() == "Cluster Store":
            return value.strip()
    return None


def sysctl_conf(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def hosts_file(text: str) -> dict[str, set[str]]:
    """/etc/hosts as {ip: {names}}."""
    entries: dict[str, set[str]] = {}
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2:
            entries.setdefault(parts[0], set()).update(parts[1:])
    return entries


MESH_PEER_TYPE = "node-to-node mesh"


@dataclass(frozen=True)
class BgpPeer:
    address: str
    peer_type: str
    state: str
    since: str
    info: str

    @property
    def established(self) -> bool:
        return self.state == "up" and self.info.split()[:1] == ["Established"]


@dataclass(frozen=True)
class CalicoNodeStatus:
    running: bool
    ipv4_peers: tuple[BgpPeer, ...]


# tablewriter's rule lines: `+-----+---+` above and below the header and under the last row.
_TABLE_RULE = re.compile(r"^\+[-+]*\+$")
_SECTION = re.compile(r"^(IPv[46]) BGP status$")


def _join_cells(lines: list[list[str]]) -> list[str]:
    """Cell by cell, the non-empty fragments of one wrapped row, joined by single spaces: how
    tablewriter's WrapString split the text (on single spaces)."""
    return [" ".join(frag for frag in column if frag) for column in zip(*lines, strict=True)]


def _table_rows(lines: list[str]) -> list[dict[str, str]]:
    """A tablewriter box table as {HEADER NAME: cell} rows, wrapped cells joined back.

    tablewriter (as vendored by calicoctl v1.6.1) wraps any cell wider than 30 over several
    lines and fills the other columns of those continuation lines with blanks; later versions
    wrap header cells too. So the header is every line up to the rule under it, and a data
    line whose PEER ADDRESS is blank continues the row above (an address never wraps: no space).
    """
    header_lines: list[list[str]] = []
    header: list[str] | None = None
    boxed = False  # a rule opened the table: the header runs until the next rule
    rows: list[list[list[str]]] = []
    for line in lines:
        if _TABLE_RULE.match(line):
            if header_lines and header is None:
                header = [" ".join(name.split()).upper() for name in _join_cells(header_lines)]
            elif not header_lines:
                boxed = True
            continue
        if len(line) < 2 or not (line.startswith("|") and line.endswith("|")):
            continue
        cells = [cell.strip() for cell in line[1:-1].split("|")]
        if header is None:
            if header_lines and len(cells) != len(header_lines[0]):
                continue
            header_lines.append(cells)
            if not boxed:  # no rules at all: nothing marks a header's end, so it is one line
                header = [" ".join(name.split()).upper() for name in cells]
            continue
        if len(cells) != len(header):
            continue  # not a row of this table; better no peer than one made of shifted cells
        address = dict(zip(header, cells, strict=True)).get("PEER ADDRESS", "")
        if rows and not address:
            rows[-1].append(cells)
        else:
            rows.append([cells])
    if header is None:
        return []
    return [dict(zip(header, _join_cells(row), strict=True)) for row in rows]


def calicoctl_node_status(text: str) -> CalicoNodeStatus:
    """`calicoctl node status`: the running line and the IPv4 BGP table, read by its header
    names (PEER ADDRESS, PEER TYPE, STATE, SINCE, INFO), not by column position.

    A wrapped cell is joined back into its row; the IPv6 table is ignored; `Calico process is
    not running.` and the `INFO: BIRDv4 process: 'bird' is not running.` lines give no peers.
    """
    running = False
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line == "Calico process is running.":
            running = True
            continue
        section = _SECTION.match(line)
        if section:
            current = sections.setdefault(section.group(1), [])
        elif line.startswith(("|", "+")):
            if current is not None:
                current.append(line)
        elif line:
            # `No IPv4 peers found.`, `INFO: ...`, `Error querying BIRD: ...`: no table follows.
            current = None
    peers = tuple(
        BgpPeer(row.get("PEER ADDRESS", ""), row.get("PEER TYPE", ""), row.get("STATE", ""),
                row.get("SINCE", ""), row.get("INFO", ""))
        for row in _table_rows(sections.get("IPv4", [])))
    return CalicoNodeStatus(running, peers)


def mesh_problems(status: CalicoNodeStatus, expected_peers: Iterable[str]) -> list[str]:
    """What keeps this node's BGP mesh from being Established, as readable sentences; none means
    Established. The project's one definition: calico running, the IPv4 peer set exactly
    `expected_peers` (no missing, extra or repeated row), every peer `node-to-node mesh`, STATE
    `up` and INFO starting with `Established`."""
    if not status.running:
        # No table is printed then: listing every expected peer as missing would only be noise.
        return ["calico process is not running"]
    expected = list(dict.fromkeys(address.strip() for address in expected_peers))
    rows: dict[str, list[BgpPeer]] = {}
    for peer in status.ipv4_peers:
        rows.setdefault(peer.address, []).append(peer)
    problems = [f"peer {address}: missing from the IPv4 BGP table" for address in expected
                if address not in rows]
    for address, listed in rows.items():
        if address not in expected:
            problems += [f"unexpected peer {address or '(blank address)'}: type {p.peer_type!r}, "
                         f"state {p.state!r}, info {p.info!r}" for p in listed]
            continue
        if len(listed) > 1:
            problems.append(f"peer {address}: listed {len(listed)} times")
        for peer in listed:
            if peer.peer_type != MESH_PEER_TYPE:
                problems.append(f"peer {address}: type {peer.peer_type!r}, not {MESH_PEER_TYPE!r}")
            if not peer.established:
                problems.append(f"peer {address}: state {peer.state!r}, info {peer.info!r}, "
                                "not up/Established")
    return problems


def mesh_established(status: CalicoNodeStatus, expected_peers: Iterable[str]) -> bool:
    return not mesh_problems(status, expected_peers)


_CLOCK = re.compile(r"^(\d\d):(\d\d):(\d\d)$")


def since_age(since: str, clock: str) -> int | None:
    """Seconds since a BGP row's SINCE, given BIRD's clock (`date +%H:%M:%S` where BIRD runs):
    BIRD 1.6 prints a state change younger than 20 hours as `%T` (time of day, BIRD's own time
    zone), an older one as `%F` (a date), which is old enough to be None here."""
    then, now = _CLOCK.match(since.strip()), _CLOCK.match(clock.strip())
    if then is None or now is None:
        return None
    def seconds(m: re.Match[str]) -> int:
        return int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])
    return (seconds(now) - seconds(then)) % 86400  # a session that came up before midnight


def same_listeners(paths: Iterable[str]) -> Callable[[str, str], bool]:
    """Two `ss -xl` answers agree on these socket paths: the same rows name them (state, queue,
    inode). Other rows come and go with whatever else on the node opens a listener (a
    container's shim, a `docker exec`) and say nothing about these paths."""
    wanted = set(paths)

    def rows(text: str) -> list[str]:
        return sorted(" ".join(line.split()) for line in text.splitlines() if wanted & set(line.split()))

    return lambda seen, live: rows(seen) == rows(live)


def same_services(names: Iterable[str]) -> Callable[[str, str], bool]:
    """Two `docker top <container> -eo pid,comm,args` answers agree on these services: for each
    name, some process of that name (same PID, same command line) is in both, so it ran through
    the pass without a restart; or neither has one. Other rows come and go: a fork of felix
    shows felix's name and arguments under its own PID until it execs iptables or ip (fork(2)
    keeps comm, execve(2) replaces it), and confd's `sv` calls are short-lived too."""
    wanted = tuple(names)

    def rows(text: str, name: str) -> set[tuple[str, ...]]:
        return {tuple(cells) for cells in map(str.split, text.splitlines()[1:])
                if len(cells) >= 2 and cells[1] == name}

    def same(seen: str, live: str) -> bool:
        for name in wanted:
            a, b = rows(seen, name), rows(live, name)
            if (a or b) and not a & b:
                return False
        return True

    return same


def same_node_status(seen: str, live: str) -> bool:
    """Two `calicoctl node status` answers say the same thing: every line equal, but a SINCE
    time of day may read one second later or earlier with no state change. BIRD 1.6 prints a
    change's time as now_real - (now - t) (sysdep/unix/io.c, tm_format_datetime), where
    now_real is time(NULL) sampled when the monotonic second last ticked, at whatever fraction
    of a second the event loop woke: two reads of one unchanged session can differ by one
    second. A session that flapped between the reads shows a later SINCE, or another STATE or
    INFO, and is not the same."""
    a, b = seen.splitlines(), live.splitlines()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        cx, cy = x.split("|"), y.split("|")
        if len(cx) != len(cy):
            return False
        moved = [(p.strip(), q.strip()) for p, q in zip(cx, cy, strict=True) if p != q]
        if len(moved) != 1:
            return False
        age = since_age(*moved[0])
        if age is None or age not in (0, 1, 86399):
            return False
    return True


@dataclass(frozen=True)
class Route:
    dest: str
    via: str | None
    dev: str | None
    kind: str  # unicast | blackhole | unreachable ...
    proto: str | None


# -- BIRD 1.6's log (svlogd's /var/log/calico/bird/current) ------------------------------------
# One line of a protocol: `<svlogd -tt stamp> bird: <protocol>: <message>`; global lines
# (`bird: Reconfigured`) and route lines (`bird: Mesh_x > added ...`) have no `<protocol>: `.
_BIRD_LINE = re.compile(r"^(?P<at>\S+) bird: (?P<proto>[A-Za-z0-9_]+): (?P<msg>.*)$")
_STATE = re.compile(r"^State changed to (?P<state>\w+)$")
# BIRD 1.6's names for a protocol that is up (nest/proto.c, proto_state_name): `wait` is up with
# nothing fed yet (a graceful restart still waiting for its peers), `feed` while routes go out,
# `up` once done. A BGP session in any of them was Established.
_CAME_UP = ("wait", "feed", "up")
# A session "dropped as it came up" left up this soon after reaching it: the recorded collisions
# take well under a millisecond (tests/unit/fixtures/bird_collision/), a session that ends later was
# up and serving. Also how close in time two nodes' lines of one drop are.
DROPPED_AT_ONCE_S = 1.0
# The lines BIRD writes in the same event-loop pass as a state change (the reasons before it,
# "BGP session closed" and "Incoming connection ... accepted" after it) are this close.
_SAME_PASS_S = 0.1

# The signatures, in BIRD 1.6's own words (proto/bgp/bgp.c, proto/bgp/packets.c):
# - bgp_handle_graceful_restart: BGP_TRACE(D_EVENTS, "Neighbor graceful restart detected%s",
#   p->gr_active ? " - already pending" : ""), then proto_notify_state(PS_START).
# - bgp_incoming_connection: a new connection from a neighbour whose session is Established
#   and graceful-restart aware is taken for its restart (the call above), then traced as
#   "Incoming connection from %I (port %d) accepted".
# - bgp_sock_err: "Connection closed" / "Connection lost (%M)" on an Established session of a
#   graceful-restart aware neighbour calls it too: the peer's end went away (its restart).
# - bgp_rx_notification: bgp_log_error(p, BE_BGP_RX, "Received", code, subcode) logs
#   "<proto>: Received: <bgp_msg_table text>": Cease subcode 7 is "Connection collision
#   resolution", sent by bgp_rx_open's collision branch ("Connection collision, giving up the
#   other connection"); bgp_error logs "<proto>: Error: <text>", e.g. "Hold timer expired"
#   (bgp_hold_timeout, code 4.0).
GR_DETECTED = "Neighbor graceful restart detected"
COLLISION_CEASE = "Received: Connection collision resolution"
_PEER_WENT = ("Connection closed", "Connection lost")
_INCOMING = re.compile(r"^Incoming connection from \S+ \(port \d+\) accepted$")
# Lines that never say why a session ended.
_ROUTINE = ("Sending ", "Got ", "BGP session established", "Connected to table master",
            "BGP session closed", "Neighbor graceful restart done")

SHAPE_A = "A"  # the peer's new connection taken for a restart of an Established session
SHAPE_B = "B"  # Cease 7 (connection collision resolution) received on an Established session
OTHER = "other"
SHAPE_TEXT = {
    SHAPE_A: "connection collision: a second connection from the peer was taken for its graceful "
             "restart (bgp_incoming_connection), the session went back to start",
    SHAPE_B: "connection collision: the peer resolved it by router id and sent Cease 7 "
             "(bgp_rx_open's collision branch), the session went to stop",
}
# Calico 2.6.1's mesh is bidirectional, so after a restart both BIRDs connect at once and BIRD
# 1.6 drops the new session by collision; fixed in Calico 3.4 by one-way mesh connections.
UPSTREAM_FIX = ("projectcalico/node 1183be5 (PR #79, Calico 3.4: unidirectional BGP connections in "
                "the node-to-node mesh, `passive on` on one end); 21b6641 (connect delay time 2, "
                "connect retry time 5, error wait time 5,30)")
BIRD_SOURCE = ("BIRD 1.6 proto/bgp/bgp.c bgp_incoming_connection and bgp_handle_graceful_restart "
               "(shape A); proto/bgp/packets.c bgp_rx_open collision branch, Cease 6.7 (shape B)")


@dataclass(frozen=True)
class _Line:
    t: float | None
    at: str
    proto: str
    msg: str
    raw: str


@dataclass(frozen=True)
class BgpDrop:
    """One Established BGP session that ended inside a log: where, when, its signature and the
    lines that show it (those of the other end of the same drop in `echo`)."""

    node: str
    protocol: str
    at: str  # svlogd stamp of the state change
    shape: str  # SHAPE_A | SHAPE_B | OTHER
    cause: str  # in BIRD's words: the line(s) that ended it, or what is missing
    lines: tuple[str, ...] = ()
    echo: tuple[str, ...] = ()  # "node: line" of the other end
    up_s: float | None = None  # how long the session had been up (None: up before the log began)
    outage_s: float | None = None  # until the protocol was up again (None: not within the log)

    @property
    def collision(self) -> bool:
        return self.shape in (SHAPE_A, SHAPE_B)

    @property
    def when(self) -> float | None:
        """The drop's time, seconds since the epoch (svlogd writes UTC)."""
        return _svlogd_time(self.at)

    def describe(self) -> str:
        kind = f"shape {self.shape}" if self.collision else "not a collision"
        back = f", up again {self.outage_s:.1f} s later" if self.outage_s is not None else ""
        return f"{self.node}: {self.protocol} at {self.at}: {kind} ({self.cause}){back}"

    def to_json(self) -> dict[str, object]:
        return {"node": self.node, "protocol": self.protocol, "at": self.at, "shape": self.shape,
                "collision": self.collision, "cause": self.cause, "lines": list(self.lines),
                "echo": list(self.echo), "up_s": self.up_s, "outage_s": self.outage_s}


@dataclass(frozen=True)
class _End:
    node: str
    line: _Line
    up: _Line | None  # where it came up, when that is in the log
    before: tuple[_Line, ...]  # the protocol's lines since it came up (the last few)
    after: tuple[_Line, ...]  # its lines in the same pass after the change
    back: _Line | None  # when it was up again

    @property
    def up_s(self) -> float | None:
        if self.up is None or self.up.t is None or self.line.t is None:
            return None
        return round(self.line.t - self.up.t, 5)

    def kind(self) -> tuple[str, str]:
        """(shape or 'peer' or OTHER, cause) from the lines around the change."""
        msgs = [x.msg for x in self.before]
        if any(m.startswith(COLLISION_CEASE) for m in msgs):
            return SHAPE_B, COLLISION_CEASE
        gr = next((i for i, m in enumerate(msgs) if m.startswith(GR_DETECTED)), None)
        if gr is not None:
            if gr > 0 and msgs[gr - 1].startswith(_PEER_WENT):
                return "peer", f"{msgs[gr - 1]}; {msgs[gr]}"
            if any(_INCOMING.match(x.msg) for x in self.after):
                return SHAPE_A, f"{msgs[gr]}; {next(x.msg for x in self.after if _INCOMING.match(x.msg))}"
        reasons = [m for m in msgs if not m.startswith(_ROUTINE) and not _STATE.match(m)]
        if reasons:
            return OTHER, "; ".join(reasons[-3:])
        return OTHER, ("no reason in this protocol's lines (a local stop or restart of it; at info level BIRD "
                       "logs only states: /calico/bgp/v1/global/loglevel=debug says more)")

    def shown(self) -> tuple[str, ...]:
        return tuple(x.raw for x in (*self.before, self.line, *self.after))


def _svlogd_time(stamp: str) -> float | None:
    """svlogd -tt's `2026-12-02_16:43:53.06269` as seconds since the epoch (UTC)."""
    try:
        return datetime.strptime(stamp, "%Y-%m-%d_%H:%M:%S.%f").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _session_ends(node: str, log: str) -> list[_End]:
    """Every time a BGP protocol left wait, feed or up (to start, stop or down) in one log."""
    by_proto: dict[str, list[_Line]] = {}
    for raw in log.splitlines():
        m = _BIRD_LINE.match(raw.strip())
        if m:
            by_proto.setdefault(m["proto"], []).append(
                _Line(_svlogd_time(m["at"]), m["at"], m["proto"], m["msg"], raw.strip()))
    ends = []
    for lines in by_proto.values():
        up: _Line | None = None
        was_up: bool | None = None  # None: no state change seen yet
        since = 0  # index of the line after the last state change
        for i, line in enumerate(lines):
            if line.msg.startswith("Initializing"):
                # A new BIRD process sets its protocols up (nest/proto.c: "Initializing"): the one
                # before died without a word (kill -9, a restart of calico-node), which is no drop.
                up, was_up, since = None, False, i + 1
                continue
            state = _STATE.match(line.msg)
            if state is None:
                continue
            if state["state"] in _CAME_UP:
                if not was_up:
                    up, was_up = line, True
            elif was_up or (was_up is None and _left_up(lines[:i])):
                ends.append(_End(node, line, up, tuple(lines[since:i][-8:]), _same_pass(line, lines[i + 1:]),
                                 next((x for x in lines[i + 1:] if (s := _STATE.match(x.msg))
                                       and s["state"] in _CAME_UP), None)))
                up, was_up = None, False
            else:
                up, was_up = None, False
            since = i + 1
    return ends


def _same_pass(change: _Line, following: list[_Line]) -> tuple[_Line, ...]:
    """The protocol's lines right after a state change, written in the same event-loop pass."""
    out = []
    for x in following:
        if _STATE.match(x.msg) or x.t is None or change.t is None or x.t - change.t > _SAME_PASS_S:
            break
        out.append(x)
    return tuple(out[:6])


def _left_up(lines: list[_Line]) -> bool:
    """Before the first state change a log shows: lines only an Established session logs as it
    ends (it was up before the log began)."""
    return any(x.msg.startswith((GR_DETECTED, "Received: ", "Error: ", "BGP session closed")) for x in lines[-8:])


def bgp_drops(logs: Mapping[str, str]) -> list[BgpDrop]:
    """The BGP sessions dropped in several nodes' BIRD logs (node -> what its log gained in a
    window), each classified by BIRD's own words, in time order. The one reading of a drop.

    - Shape A: "Neighbor graceful restart detected[ - already pending]", state start, then
      "Incoming connection from ... accepted" in the same pass: the peer's second connection of
      a collision taken for a restart. Its other end logs "Connection closed" and the same
      graceful-restart line within DROPPED_AT_ONCE_S: shown with it (`echo`), not counted again.
    - Shape B: "Received: Connection collision resolution", then state stop.
    - The peer's end went away ("Connection closed"/"Connection lost", then graceful restart
      detected) is the peer restarting, what the faults and restarts do, and no drop, unless it
      came within DROPPED_AT_ONCE_S of the session coming up with no collision on the peer's side:
      then it is a drop of another kind.
    - Any other end of an Established session (a hold timer expiry, a Cease or error received,
      no reason logged) is a drop of another kind: never a collision.
    """
    ends = sorted((e for node, log in logs.items() for e in _session_ends(node, log)),
                  key=lambda e: (e.line.t or 0.0, e.node))
    kinds = {id(e): e.kind() for e in ends}
    for e in ends:
        kind, cause = kinds[id(e)]
        if kind == SHAPE_A and (e.up_s is None or e.up_s > DROPPED_AT_ONCE_S):
            # A new connection from the peer of a session that had been up for a while: the peer
            # restarted and came back before its old connection was seen to close (no collision).
            kinds[id(e)] = ("peer", cause)
    shape_a = [e for e in ends if kinds[id(e)][0] == SHAPE_A]

    def echo_of(end: _End) -> _End | None:
        return next((a for a in shape_a if a.node != end.node and a.line.t is not None and end.line.t is not None
                     and abs(a.line.t - end.line.t) <= DROPPED_AT_ONCE_S), None)

    echoes: dict[int, list[_End]] = {}
    drops: list[tuple[_End, str, str]] = []
    for end in ends:
        kind, cause = kinds[id(end)]
        if kind == "peer":
            partner = echo_of(end)
            if partner is not None:
                echoes.setdefault(id(partner), []).append(end)
                continue
            if end.up_s is None or end.up_s > DROPPED_AT_ONCE_S:
                continue  # the peer restarted: graceful restart's own case
            kind, cause = OTHER, f"{cause}, as it came up, and no collision in the peer's log"
        drops.append((end, kind, cause))
    return [BgpDrop(e.node, e.line.proto, e.line.at, kind, cause, e.shown(),
                    tuple(f"{x.node}: {raw}" for x in echoes.get(id(e), []) for raw in x.shown()),
                    e.up_s, None if e.back is None or e.back.t is None or e.line.t is None
                    else round(e.back.t - e.line.t, 3))
            for e, kind, cause in drops]


# Kept for tests/unit/test_parsers.py (another owner's): the timing-only reading that
# bgp_drops replaced, over the same scanner. Nothing in the suite uses it.
def bird_sessions_dropped(log: str) -> list[tuple[str, str]]:
    """(protocol, time) of the sessions that left up for start within DROPPED_AT_ONCE_S of coming up."""
    return [(e.line.proto, e.line.at) for e in _session_ends("", log)
            if e.up_s is not None and e.up_s <= DROPPED_AT_ONCE_S and e.line.msg.endswith(" start")]


def bird_drops_across(logs: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """bird_sessions_dropped over several nodes, one drop logged by both ends counted once."""
    seen = sorted((_svlogd_time(at) or 0.0, node, proto, at) for node, log in logs.items()
                  for proto, at in bird_sessions_dropped(log))
    out: list[tuple[str, str, str]] = []
    last: dict[str, float] = {}
    for t, node, proto, at in seen:
        if any(n != node and abs(t - when) <= DROPPED_AT_ONCE_S for n, when in last.items()):
            continue
        out.append((node, proto, at))
        last[node] = t
    return out


def bird_sessions_dropped_at_once(log: str, protocol: str) -> list[str]:
    return [at for proto, at in bird_sessions_dropped(log) if proto == protocol]


def ip_routes(text: str) -> list[Route]:
    """`ip route` (IPv4) lines as Route objects, keyword by keyword."""
    routes = []
    kinds = {"blackhole", "unreachable", "prohibit", "local", "broadcast", "throw"}
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        kind = "unicast"
        if words[0] in kinds:
            kind = words.pop(0)
        dest = words[0] if words else ""
        attrs = {words[i]: words[i + 1] for i in range(1, len(words) - 1) if words[i] in ("via", "dev", "proto")}
        routes.append(Route(dest, attrs.get("via"), attrs.get("dev"), kind, attrs.get("proto")))
    return routes


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str
    ipv4: tuple[str, ...]


def ip_addr(text: str) -> dict[str, Interface]:
    """`ip addr` (busybox or iproute2): interfaces with their MAC and IPv4/prefix addresses."""
    result: dict[str, Interface] = {}
    name, mac, addrs = "", "", []
    for line in text.splitlines():
        m = re.match(r"^\d+:\s+([^:@]+)[@:]", line)
        if m:
            if name:
                result[name] = Interface(name, mac, tuple(addrs))
            name, mac, addrs = m.group(1), "", []
            continue
        words = line.split()
        if words[:1] == ["link/ether"] and len(words) > 1:
            mac = words[1]
        elif words[:1] == ["inet"] and len(words) > 1:
            addrs.append(words[1])
    if name:
        result[name] = Interface(name, mac, tuple(addrs))
    return result


def ping_ttls(text: str) -> list[int]:
    return [int(t) for t in re.findall(r"ttl=(\d+)", text)]


@dataclass(frozen=True)
class HostAddress:
    """One IPv4 address of a host interface."""

    ifname: str
    interface: ipaddress.IPv4Interface

    @property
    def network(self) -> ipaddress.IPv4Network:
        return self.interface.network

    @property
    def address(self) -> str:
        return str(self.interface.ip)


def ip_json_addresses(text: str) -> list[HostAddress]:
    """IPv4 addresses from `ip -j addr` (iproute2's JSON output)."""
    found = []
    for link in json.loads(text or "[]"):
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and "local" in info:
                iface = ipaddress.IPv4Interface(f"{info['local']}/{info.get('prefixlen', 32)}")
                found.append(HostAddress(link.get("ifname", "?"), iface))
    return found

"""Parsers for the outputs the guide shows, by structure (split on ':', '|', JSON), never by
column position."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
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
    """`etcdctl member list -w json` plus `endpoint status -w json` for the leader."""
    members = json.loads(member_json).get("members", [])
    leaders = {str(s["Status"]["leader"]) for s in json.loads(status_json)}
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


@dataclass(frozen=True)
class Route:
    dest: str
    via: str | None
    dev: str | None
    kind: str  # unicast | blackhole | unreachable ...
    proto: str | None


_BIRD_STATE = re.compile(r"^(?P<at>\S+) bird: (?P<proto>\S+): State changed to (?P<state>\w+)$")


# A session "dropped as it came up" fell back to start this soon after reaching wait, feed or up;
# the logs of the failing runs show well under a millisecond, a session that flaps later is
# another fault.
DROPPED_AT_ONCE_S = 1.0
# BIRD 1.6's names for a protocol that is up (nest/proto.c, proto_state_name): `wait` is up with
# nothing fed yet (a graceful restart still waiting for its peers), `feed` while routes go out,
# `up` once done. A BGP session in any of them was Established.
_CAME_UP = ("wait", "feed", "up")


def _svlogd_time(stamp: str) -> float | None:
    """svlogd -tt's `2026-12-02_16:43:53.06269` as seconds since the epoch (UTC)."""
    try:
        return datetime.strptime(stamp, "%Y-%m-%d_%H:%M:%S.%f").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def bird_sessions_dropped(log: str) -> list[tuple[str, str]]:
    """(protocol, time) of every BGP session in a BIRD log (svlogd's
    /var/log/calico/bird/current) that reached wait, feed or up and was back in start within
    DROPPED_AT_ONCE_S: a new session dropped as it came up, as after a restart when
    graceful-restart recovery loses its first session."""
    came_up: dict[str, float | None] = {}  # protocol -> when it reached feed/up (absent: not up)
    dropped = []
    for m in map(_BIRD_STATE.match, log.splitlines()):
        if not m:
            continue
        proto, state, at = m["proto"], m["state"], _svlogd_time(m["at"])
        if state in _CAME_UP:
            came_up.setdefault(proto, at)
            continue
        since = came_up.pop(proto, None)
        if state == "start" and since is not None and at is not None and at - since <= DROPPED_AT_ONCE_S:
            dropped.append((proto, m["at"]))
    return dropped


def bird_drops_across(logs: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(node, protocol, time) of the sessions dropped as they came up in several nodes' BIRD
    logs, node -> log, in time order. Both ends of one session may log its drop: a drop within
    DROPPED_AT_ONCE_S of one already counted on another node is the same one."""
    seen = sorted(((_svlogd_time(at) or 0.0, node, proto, at) for node, log in logs.items()
                   for proto, at in bird_sessions_dropped(log)))
    out: list[tuple[str, str, str]] = []
    last: dict[str, float] = {}  # node -> time of its last counted drop
    for t, node, proto, at in seen:
        if any(n != node and abs(t - when) <= DROPPED_AT_ONCE_S for n, when in last.items()):
            continue
        out.append((node, proto, at))
        last[node] = t
    return out


def bird_sessions_dropped_at_once(log: str, protocol: str) -> list[str]:
    """Times at which `protocol` was dropped as it came up (see bird_sessions_dropped)."""
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

"""Parsers for the outputs the guide shows, by structure (split on ':', '|', JSON), never by
column position."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field


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


def calicoctl_node_status(text: str) -> CalicoNodeStatus:
    """`calicoctl node status`: the running line and the IPv4 BGP table, read by its header
    names (PEER ADDRESS, PEER TYPE, STATE, SINCE, INFO), not by column position."""
    running = "Calico process is running." in text
    peers: list[BgpPeer] = []
    header: list[str] | None = None
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith("BGP status"):
            section = stripped.split()[0]
            header = None
            continue
        if not stripped.startswith("|") or section != "IPv4":
            continue
        cells = [cell.strip() for cell in stripped.strip("|").split("|")]
        if header is None:
            header = [c.upper() for c in cells]
            continue
        row = dict(zip(header, cells, strict=False))
        peers.append(BgpPeer(row.get("PEER ADDRESS", ""), row.get("PEER TYPE", ""),
                             row.get("STATE", ""), row.get("SINCE", ""), row.get("INFO", "")))
    return CalicoNodeStatus(running, tuple(peers))


@dataclass(frozen=True)
class Route:
    dest: str
    via: str | None
    dev: str | None
    kind: str  # unicast | blackhole | unreachable ...
    proto: str | None


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

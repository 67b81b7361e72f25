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

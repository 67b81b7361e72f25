"""Ask a node's etcd what the guide asks: members, leader, health, keys (v2 API)."""

from __future__ import annotations

import json
import shlex

from calicolab import parsers, versions
from calicolab.remote import CommandResult, Node


def uses_v2_etcdctl(version: str) -> bool:
    # The guide runs `ETCDCTL_API=2 etcdctl`; etcdctl 3.5 and later dropped v2 commands.
    return versions.parse(version)[:2] < (3, 5)


def etcdctl(node: Node, args: str, version: str, endpoints: str, timeout: float = 20) -> CommandResult:
    api = "2" if uses_v2_etcdctl(version) else "3"
    # Always pass endpoints: etcdctl's default 127.0.0.1:4001 is one of the guide's errors.
    return node.run(f"ETCDCTL_API={api} etcdctl --endpoints {endpoints} {args}", timeout=timeout)


def members(node: Node, version: str, endpoints: str) -> list[parsers.EtcdMember]:
    if uses_v2_etcdctl(version):
        return parsers.etcd_member_list_v2(etcdctl(node, "member list", version, endpoints).stdout)
    listed = etcdctl(node, "member list -w json", version, endpoints)
    status = etcdctl(node, "endpoint status -w json", version, endpoints)
    return parsers.etcd_member_list_v3(listed.stdout or "{}", status.stdout or "[]")


def health(node: Node, version: str, endpoints: str) -> parsers.ClusterHealth:
    if uses_v2_etcdctl(version):
        res = etcdctl(node, "cluster-health", version, endpoints)
        return parsers.etcd_cluster_health_v2(res.stdout + res.stderr)
    res = etcdctl(node, "endpoint health", version, endpoints)
    total = len(endpoints.split(","))
    healthy = (res.stdout + res.stderr).count(" is healthy")
    verdict = "healthy" if healthy == total else "degraded" if healthy > total // 2 else "unavailable"
    return parsers.ClusterHealth(verdict, {})


def v2_url(ip: str, key: str) -> str:
    return f"http://{ip}:2379/v2/keys/{key.lstrip('/')}"


def v2_put(node: Node, ip: str, key: str, value: str) -> CommandResult:
    return node.run(f"curl -sS -f -X PUT {shlex.quote(v2_url(ip, key))} "
                    f"--data-urlencode value={shlex.quote(value)}")


def v2_get(node: Node, ip: str, key: str) -> str | None:
    res = node.run(f"curl -sS -f {shlex.quote(v2_url(ip, key))}")
    if not res.ok:
        return None
    return json.loads(res.stdout).get("node", {}).get("value")


def v2_delete(node: Node, ip: str, key: str) -> CommandResult:
    return node.run(f"curl -sS -f -X DELETE {shlex.quote(v2_url(ip, key))}")

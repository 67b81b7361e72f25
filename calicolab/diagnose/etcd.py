"""Checks of the etcd cluster (guide section 4) and the root causes other checks blame on it:
a member down or stale, no quorum, the loopback client URL, the v2 API off.
"""

from __future__ import annotations

import json
import re

from calicolab.core import versions
from calicolab.diagnose.diagnoses import (
    ETCD_LOOPBACK,
    ETCD_MEMBER_DOWN,
    ETCD_NOT_SERVING,
    ETCD_PEER_PORT_BLOCKED,
    ETCD_PUBLISH_TIMEOUT,
    ETCD_STALE_DATA,
    ETCD_V2_OFF,
    HOST_UNREACHABLE,
    Diagnosis,
    Finding,
)
from calicolab.diagnose.engine import ClusterView, failed, passed
from calicolab.stack import probes
from calicolab.stack.probes import NodeLike

STALE_PATTERNS = re.compile(r"has already been bootstrapped|cluster ID mismatch|cluster id mismatch")

def etcd_member_cause(view: ClusterView, node: NodeLike) -> Diagnosis | None:
    """Why this node's etcd member does not run or serve clients (None: it does)."""
    state = view.remember(node, "etcd unit", lambda: probes.unit_state(node, "etcd"))
    if state != "active":
        log = probes.journal(node, "etcd", 40)
        if state in ("failed", "activating") and STALE_PATTERNS.search(log):
            return ETCD_STALE_DATA.at(node.name)
        if state == "activating" and "publish error" in log:
            return ETCD_PUBLISH_TIMEOUT.at(node.name)
        return ETCD_MEMBER_DOWN.at(f"{node.name} (etcd {state})")
    answer = view.remember(node, "etcd version", lambda: view.http(node, view.etcd_url(node.ip, "/version")))
    if not answer.answered:
        return ETCD_NOT_SERVING.at(f"{node.name} ({view.etcd_url(node.ip, '')})")
    return None

def v2_answer(view: ClusterView, node: NodeLike, ip: str | None = None) -> probes.HttpAnswer:
    ip = ip or node.ip
    return view.remember(node, f"v2 {ip}", lambda: view.http(node, view.etcd_url(ip, "/v2/keys/")))

def v2_off(answer: probes.HttpAnswer) -> bool:
    # 404 with etcd's own JSON error means a missing key; a plain 404 means no v2 handler at all.
    return answer.status == 404 and '"errorCode"' not in answer.body

def etcd_access_cause(view: ClusterView, node: NodeLike) -> Diagnosis | None:
    """Why Calico and Docker on this node cannot use etcd's v2 keyspace (None: they can)."""
    cause = etcd_member_cause(view, node)
    if cause:
        return cause
    if v2_off(v2_answer(view, node)):
        return ETCD_V2_OFF.at(node.name)
    return quorum_cause(view)

def quorum_cause(view: ClusterView) -> Diagnosis | None:
    """Why the cluster has no quorum (None: every member answers /health true)."""
    sick = [n for n in view.nodes.values() if not healthy(view, n)]
    if not sick:
        return None
    for node in view.nodes.values():
        cause = etcd_member_cause(view, node)
        if cause:
            return cause
    first = next(iter(view.nodes.values()))
    for peer in view.peers(first):
        port = probes.tcp_port(first, peer.ip, 2380)
        if port == probes.UNREACHABLE or (port != probes.OPEN and not probes.ping(first, peer.ip)):
            # Not a firewall: the peer is off the private network (the Debian VM lane saw it).
            return HOST_UNREACHABLE.at(f"{first.name} -> {peer.ip} (etcd peers on 2380 too)")
        if port != probes.OPEN:
            return ETCD_PEER_PORT_BLOCKED.at(f"{first.name} -> {peer.name}:2380")
    return ETCD_PUBLISH_TIMEOUT.at(", ".join(n.name for n in sick))

def healthy(view: ClusterView, node: NodeLike) -> bool:
    answer = view.remember(node, "etcd health", lambda: view.http(node, view.etcd_url(node.ip, "/health")))
    return '"health":"true"' in answer.body.replace(" ", "")

def v2_value(view: ClusterView, node: NodeLike, key: str) -> str | None:
    answer = view.http(node, view.etcd_url(node.ip, f"/v2/keys{key}"))
    try:
        return json.loads(answer.body).get("node", {}).get("value") if answer.status == 200 else None
    except json.JSONDecodeError:
        return None

def check_etcd_member(view: ClusterView, node: NodeLike) -> Finding:
    cause = etcd_member_cause(view, node)
    if cause:
        state = view.remember(node, "etcd unit", lambda: probes.unit_state(node, "etcd"))
        seen = f"etcd.service {state}"
        if state == "active":
            seen += f", {view.etcd_url(node.ip, '')} does not answer"
        return failed("etcd member", node.name, seen, cause)
    return passed("etcd member", node.name, f"running, answers on {view.etcd_url(node.ip, '')}")

def check_etcd_loopback(view: ClusterView, node: NodeLike) -> Finding:
    url = view.etcd_url("127.0.0.1", "/version")
    if view.http(node, url).answered:
        return passed("etcd loopback URL", node.name, f"{url} answers")
    cause = etcd_member_cause(view, node) or ETCD_LOOPBACK.at(node.name)
    return failed("etcd loopback URL", node.name, f"{url} does not answer", cause)

def check_etcd_v2(view: ClusterView, node: NodeLike) -> Finding:
    answer = v2_answer(view, node)
    if answer.status == 200:
        return passed("etcd v2 API", node.name, "GET /v2/keys/ -> 200")
    if v2_off(answer):
        flag = probes.config_lines(node, "/etc/etcd/etcd.conf").get("ETCD_ENABLE_V2", "unset")
        return failed("etcd v2 API", node.name, f"GET /v2/keys/ -> 404 (ETCD_ENABLE_V2 {flag} in etcd.conf)",
                     ETCD_V2_OFF.at(node.name))
    cause = etcd_member_cause(view, node) or ETCD_NOT_SERVING.at(node.name)
    return failed("etcd v2 API", node.name, f"GET /v2/keys/ -> {answer.status or 'no answer'}", cause)

def member_status(view: ClusterView, node: NodeLike) -> dict:
    # The v3 gateway answers without the v2 API and without quorum: cluster id, member id, leader.
    gateway = "/v3/" if versions.parse(view.cfg.versions.etcd)[:2] >= (3, 4) else "/v3beta/"
    answer = view.http(node, view.etcd_url(node.ip, f"{gateway}maintenance/status"), method="POST", data="{}")
    try:
        return json.loads(answer.body) if answer.status == 200 else {}
    except json.JSONDecodeError:
        return {}

def cluster_verdict(view: ClusterView) -> tuple[str, set[str]]:
    """healthy | degraded: ... | unavailable: ..., and the cluster ids the members report."""
    health = {name: healthy(view, node) for name, node in view.nodes.items()}
    statuses = {name: member_status(view, node) for name, node in view.nodes.items()}
    clusters = {str(s["header"]["cluster_id"]) for s in statuses.values() if s.get("header")}
    leaders = {str(s["leader"]) for s in statuses.values() if str(s.get("leader", "0")) != "0"}
    down = [name for name, status in statuses.items() if not status]
    if all(health.values()) and len(leaders) == 1:
        return "healthy", clusters
    if len(down) == len(statuses):
        return "unavailable: no member answers", clusters
    quorum = "" if any(health.values()) else "no quorum (no leader)"
    if down:
        return f"degraded: {', '.join(down)} down" + (f", {quorum}" if quorum else ""), clusters
    return f"degraded: {quorum or f'{len(leaders)} leaders seen'}", clusters

def check_etcd_cluster(view: ClusterView) -> Finding:
    verdict, clusters = cluster_verdict(view)
    if len(clusters) > 1:
        return failed("etcd cluster", "cluster", f"members report different cluster ids {sorted(clusters)}",
                     ETCD_STALE_DATA)
    if verdict == "healthy":
        return passed("etcd cluster", "cluster", f"healthy: {len(view.nodes)} members, one leader, one cluster id")
    return failed("etcd cluster", "cluster", verdict, quorum_cause(view) or ETCD_PUBLISH_TIMEOUT)

"""The checks behind `invoke doctor` and the fault-injection tests: each runs against the live
nodes (calicolab.remote.Node, or tests' FakeNode) and returns a Finding with the named
diagnosis (calicolab/diagnoses.py) that explains a failure. A failing check looks for the
root cause (calico-node is down *because* etcd has no quorum), not only the symptom.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from calicolab.core import versions
from calicolab.core.config import ClusterConfig
from calicolab.core.config import Node as NodeSpec
from calicolab.core.errors import UserError
from calicolab.diagnose.diagnoses import (
    BGP_CONNECTING,
    BGP_PEER_DOWN,
    BGP_PORT_BLOCKED,
    BGP_WRONG_IP,
    BIRD_DOWN,
    BIRD_RESTARTED,
    CALICO_NOT_RUNNING,
    CALICO_STARTED_BEFORE_ETCD,
    DOCKER_DOWN,
    DOCKER_STORE_MISSING,
    DOCKER_STORE_UNREACHABLE,
    ETCD_LOOPBACK,
    ETCD_MEMBER_DOWN,
    ETCD_NOT_SERVING,
    ETCD_PEER_PORT_BLOCKED,
    ETCD_PUBLISH_TIMEOUT,
    ETCD_STALE_DATA,
    ETCD_V2_OFF,
    FAIL,
    HOST_UNREACHABLE,
    IP_FORWARDING_OFF,
    MTU_MISMATCH,
    NETWORK_NOT_SHARED,
    NODE_UNREACHABLE,
    PASS,
    PLUGIN_SOCKETS_MISSING,
    RP_FILTER_LOOSE,
    WARN,
    Diagnosis,
    Finding,
)
from calicolab.stack import parsers, probes
from calicolab.stack.etcd_tls import CLIENT
from calicolab.stack.probes import NodeLike

T = TypeVar("T")


@dataclass
class ClusterView:
    """The configuration and the nodes the checks run against."""

    cfg: ClusterConfig
    nodes: dict[str, NodeLike]
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def spec(self, node: NodeLike) -> NodeSpec:
        return self.cfg.node(node.name)

    def peers(self, node: NodeLike) -> list[NodeSpec]:
        return list(self.cfg.peers_of(node.name))

    @property
    def scheme(self) -> str:
        return self.cfg.etcd_scheme

    @property
    def curl_opts(self) -> str:
        """The client certificate when etcd's client side runs over TLS (setting etcd_tls)."""
        if not self.cfg.etcd_tls:
            return ""
        return f"--cacert {CLIENT.ca} --cert {CLIENT.cert} --key {CLIENT.key}"

    def etcd_url(self, ip: str, path: str) -> str:
        return f"{self.scheme}://{ip}:2379{path}"

    def http(self, node: NodeLike, url: str, **kw) -> probes.HttpAnswer:
        return probes.http(node, url, self.curl_opts, **kw)

    def remember(self, node: NodeLike, what: str, make: Callable[[], T]) -> T:
        """One probe answer per node and run: several checks ask the same question."""
        key = (node.name, what)
        if key not in self._cache:
            self._cache[key] = make()
        return cast(T, self._cache[key])


def _pass(check: str, node: str, seen: str) -> Finding:
    return Finding(check, node, PASS, seen)


def _fail(check: str, node: str, seen: str, diagnosis: Diagnosis) -> Finding:
    return Finding(check, node, FAIL, seen, diagnosis)


# -- root causes shared by several checks ------------------------------------------------------
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
    sick = [n for n in view.nodes.values() if not _healthy(view, n)]
    if not sick:
        return None
    for node in view.nodes.values():
        cause = etcd_member_cause(view, node)
        if cause:
            return cause
    first = next(iter(view.nodes.values()))
    for peer in view.peers(first):
        if probes.tcp_port(first, peer.ip, 2380) != probes.OPEN:
            return ETCD_PEER_PORT_BLOCKED.at(f"{first.name} -> {peer.name}:2380")
    return ETCD_PUBLISH_TIMEOUT.at(", ".join(n.name for n in sick))


def _healthy(view: ClusterView, node: NodeLike) -> bool:
    answer = view.remember(node, "etcd health", lambda: view.http(node, view.etcd_url(node.ip, "/health")))
    return '"health":"true"' in answer.body.replace(" ", "")


def calico_down_cause(view: ClusterView, node: NodeLike) -> Diagnosis:
    """Why calico-node does not run on this node."""
    if probes.unit_state(node, "docker") != "active":
        return DOCKER_DOWN.at(node.name)
    etcd = etcd_access_cause(view, node)
    if etcd:
        return etcd  # calico-node waits for (or gave up on) etcd: etcd is the root cause
    log = probes.journal(node, "calico-node", 60) + node.run("docker logs --tail 40 calico-node 2>&1").stdout
    if re.search(r"is already using the IPv4 address", log):
        return BGP_WRONG_IP.at(node.name)
    if probes.unit_state(node, "calico-node") == "failed" and re.search(
            r"etcd cluster is unavailable|Waiting for etcd|Error accessing the Calico datastore|"
            r"failed to start: .*etcd", log, re.IGNORECASE):
        return CALICO_STARTED_BEFORE_ETCD.at(node.name)
    return CALICO_NOT_RUNNING.at(node.name)


# -- the checks --------------------------------------------------------------------------------
BIRD_SOCKET = probes.BIRD_CTL
CALICOCTL_SECONDS = 15  # it answers in well under a second when it works
BIRD_RECENT = 600  # a BIRD restart younger than this is worth a warning
BIRD_START_SLACK = 20  # BIRD starts a few seconds after the container's first process


def check_etcd_member(view: ClusterView, node: NodeLike) -> Finding:
    cause = etcd_member_cause(view, node)
    if cause:
        state = view.remember(node, "etcd unit", lambda: probes.unit_state(node, "etcd"))
        seen = f"etcd.service {state}"
        if state == "active":
            seen += f", {view.etcd_url(node.ip, '')} does not answer"
        return _fail("etcd member", node.name, seen, cause)
    return _pass("etcd member", node.name, f"running, answers on {view.etcd_url(node.ip, '')}")


def check_etcd_loopback(view: ClusterView, node: NodeLike) -> Finding:
    url = view.etcd_url("127.0.0.1", "/version")
    if view.http(node, url).answered:
        return _pass("etcd loopback URL", node.name, f"{url} answers")
    cause = etcd_member_cause(view, node) or ETCD_LOOPBACK.at(node.name)
    return _fail("etcd loopback URL", node.name, f"{url} does not answer", cause)


def check_etcd_v2(view: ClusterView, node: NodeLike) -> Finding:
    answer = v2_answer(view, node)
    if answer.status == 200:
        return _pass("etcd v2 API", node.name, "GET /v2/keys/ -> 200")
    if v2_off(answer):
        flag = probes.config_lines(node, "/etc/etcd/etcd.conf").get("ETCD_ENABLE_V2", "unset")
        return _fail("etcd v2 API", node.name, f"GET /v2/keys/ -> 404 (ETCD_ENABLE_V2 {flag} in etcd.conf)",
                     ETCD_V2_OFF.at(node.name))
    cause = etcd_member_cause(view, node) or ETCD_NOT_SERVING.at(node.name)
    return _fail("etcd v2 API", node.name, f"GET /v2/keys/ -> {answer.status or 'no answer'}", cause)


def _member_status(view: ClusterView, node: NodeLike) -> dict:
    # The v3 gateway answers without the v2 API and without quorum: cluster id, member id, leader.
    gateway = "/v3/" if versions.parse(view.cfg.versions.etcd)[:2] >= (3, 4) else "/v3beta/"
    answer = view.http(node, view.etcd_url(node.ip, f"{gateway}maintenance/status"), method="POST", data="{}")
    try:
        return json.loads(answer.body) if answer.status == 200 else {}
    except json.JSONDecodeError:
        return {}


def cluster_verdict(view: ClusterView) -> tuple[str, set[str]]:
    """healthy | degraded: ... | unavailable: ..., and the cluster ids the members report."""
    health = {name: _healthy(view, node) for name, node in view.nodes.items()}
    statuses = {name: _member_status(view, node) for name, node in view.nodes.items()}
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
        return _fail("etcd cluster", "cluster", f"members report different cluster ids {sorted(clusters)}",
                     ETCD_STALE_DATA)
    if verdict == "healthy":
        return _pass("etcd cluster", "cluster", f"healthy: {len(view.nodes)} members, one leader, one cluster id")
    return _fail("etcd cluster", "cluster", verdict, quorum_cause(view) or ETCD_PUBLISH_TIMEOUT)


def check_docker_store(view: ClusterView, node: NodeLike) -> Finding:
    info = node.run("docker info 2>/dev/null", timeout=60)
    if not info.ok:
        return _fail("docker cluster store", node.name, "`docker info` failed", DOCKER_DOWN.at(node.name))
    store = parsers.docker_info_cluster_store(info.stdout)
    if not store:
        return _fail("docker cluster store", node.name, "no Cluster Store in `docker info`",
                     DOCKER_STORE_MISSING.at(node.name))
    host = store.split("://", 1)[-1].split(",")[0].split("/")[0]
    ip = host.split(":")[0]
    answer = view.http(node, f"{view.scheme}://{host}/v2/keys/")
    if answer.status == 200:
        return _pass("docker cluster store", node.name, f"{store} serves /v2/keys")
    owner = next((n for n in view.nodes.values() if n.ip == ip), None)
    if v2_off(answer):
        cause = ETCD_V2_OFF.at(owner.name if owner else ip)
    else:
        cause = (etcd_member_cause(view, owner) if owner else None) or DOCKER_STORE_UNREACHABLE.at(node.name)
    return _fail("docker cluster store", node.name, f"{store}: GET /v2/keys/ -> {answer.status or 'no answer'}",
                 cause)


def check_networks_shared(view: ClusterView) -> Finding:
    seen: dict[str, tuple[str, ...]] = {}
    for name, node in view.nodes.items():
        res = node.run("docker network ls --filter driver=calico --format '{{.ID}} {{.Name}}'")
        if not res.ok:
            return _fail("calico networks shared", name, "`docker network ls` failed", DOCKER_DOWN.at(name))
        seen[name] = tuple(sorted(line.strip() for line in res.stdout.splitlines() if line.strip()))
    if len(set(seen.values())) == 1:
        count = len(next(iter(seen.values())))
        return _pass("calico networks shared", "cluster", f"the same {count} Calico network(s) on every node")
    listed = "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in seen.items())
    return _fail("calico networks shared", "cluster", listed, NETWORK_NOT_SHARED)


def check_calico_node(view: ClusterView, node: NodeLike) -> Finding:
    unit = probes.unit_state(node, "calico-node")
    running = probes.container_running(node, "calico-node")
    if unit == "active" and running:
        return _pass("calico-node", node.name, "unit active, container running")
    seen = f"calico-node.service {unit}, container {'running' if running else 'not running'}"
    return _fail("calico-node", node.name, seen, calico_down_cause(view, node))


def check_plugin_sockets(view: ClusterView, node: NodeLike) -> Finding:
    missing = [s for s in ("calico", "calico-ipam") if not probes.socket_exists(node, f"/run/docker/plugins/{s}.sock")]
    if not missing:
        return _pass("libnetwork plugin", node.name, "/run/docker/plugins/calico{,-ipam}.sock present")
    return _fail("libnetwork plugin", node.name, f"missing: {', '.join(f'{m}.sock' for m in missing)}",
                 PLUGIN_SOCKETS_MISSING.at(node.name))


def _bird(node: NodeLike) -> tuple[list[probes.Process] | None, list[probes.Process]]:
    procs = probes.container_processes(node, "calico-node")
    return procs, [p for p in procs or [] if p.command == "bird"]


def check_bird(view: ClusterView, node: NodeLike) -> Finding:
    procs, birds = _bird(node)
    if procs is None:
        return _fail("BIRD", node.name, "calico-node container not running", calico_down_cause(view, node))
    if not birds:
        return _fail("BIRD", node.name, "no bird process inside calico-node", BIRD_DOWN.at(node.name))
    if not probes.socket_exists(node, BIRD_SOCKET):
        return _fail("BIRD", node.name, f"bird runs but {BIRD_SOCKET} is missing", BIRD_DOWN.at(node.name))
    bird, oldest = min(birds, key=lambda p: p.age), max(p.age for p in procs)
    if bird.age < BIRD_RECENT and oldest - bird.age > BIRD_START_SLACK:
        return Finding("BIRD", node.name, WARN, f"bird (pid {bird.pid}) up {bird.age} s, calico-node up {oldest} s",
                       BIRD_RESTARTED.at(node.name))
    return _pass("BIRD", node.name, f"bird pid {bird.pid}, up {bird.age} s")


def node_status(view: ClusterView, node: NodeLike) -> tuple[parsers.CalicoNodeStatus, str]:
    """`calicoctl node status`, or BIRD's own table when calicoctl hangs (the double's
    calicoctl is a `docker run`, and Docker stalls while its cluster store has no quorum)."""
    if all(_healthy(view, n) for n in view.nodes.values()):
        res = node.run("calicoctl node status", timeout=CALICOCTL_SECONDS)
        if res.rc != 124:
            return parsers.calicoctl_node_status(res.stdout), ""
        note = " (calicoctl timed out: read from BIRD)"
    else:
        note = " (etcd has no quorum, Docker stalls: read from BIRD)"
    text = probes.bird_protocols(node)
    if text is None:
        return parsers.CalicoNodeStatus(False, ()), note.replace(": read from BIRD", "; BIRD did not answer")
    peers = tuple(parsers.BgpPeer(*row) for row in probes.bird_bgp_peers(text))
    return parsers.CalicoNodeStatus(True, peers), note


def check_bgp_mesh(view: ClusterView, node: NodeLike) -> Finding:
    status, note = node_status(view, node)
    if not status.running:
        procs, birds = _bird(node)
        cause = BIRD_DOWN.at(node.name) if procs and not birds else calico_down_cause(view, node)
        return _fail("BGP mesh", node.name, "Calico process is not running." + note, cause)
    rows = {p.address: p for p in status.ipv4_peers}
    bad = [(peer, rows.get(peer.ip)) for peer in view.peers(node)
           if not (peer.ip in rows and rows[peer.ip].established and rows[peer.ip].peer_type == "node-to-node mesh")]
    if not bad:
        return _pass("BGP mesh", node.name, "Established with " + ", ".join(p.ip for p in view.peers(node)) + note)
    peer, row = bad[0]
    seen = f"peer {peer.ip}: {row.peer_type}, {row.state}, {row.info}" if row else f"no row for peer {peer.ip}"
    return _fail("BGP mesh", node.name, seen + note, session_cause(view, node, peer, row.info if row else ""))


def session_cause(view: ClusterView, node: NodeLike, peer: NodeSpec, info: str = "") -> Diagnosis:
    """Why the BGP session from node to peer is not Established. `info` is the row's INFO
    (BIRD's last error, e.g. `Active Socket: Connection refused`). Nothing here connects to
    BIRD's port itself: BIRD would take a probe for its peer, and its close for an error."""
    procs, birds = _bird(node)
    if procs is None:
        return calico_down_cause(view, node)
    if not birds:
        return BIRD_DOWN.at(node.name)
    other = view.nodes.get(peer.name)
    for host in (node, other):
        rules = probes.rules_dropping_port(host, 179) if host is not None else []
        if rules:
            return BGP_PORT_BLOCKED.at(f"{host.name} has `{rules[0]}`")
    if other is not None:
        peer_procs, peer_birds = _bird(other)
        if peer_procs is None:
            return BGP_PEER_DOWN.at(f"{peer.name} (calico-node not running)")
        if not peer_birds:
            return BGP_PEER_DOWN.at(f"{peer.name} (no bird inside calico-node)")
    text = info.lower()
    if "refused" in text:
        return BGP_PEER_DOWN.at(f"{node.name} -> {peer.ip}:179 refused")
    unanswered = probes.connecting(node, peer.ip, 179) or "timed out" in text
    if unanswered or "no route" in text or "unreachable" in text:
        if not probes.ping(node, peer.ip):
            return HOST_UNREACHABLE.at(f"{node.name} -> {peer.ip}")
        if unanswered:
            return BGP_PORT_BLOCKED.at(f"{node.name} -> {peer.ip}:179 SYN unanswered")
    for spec in (view.spec(node), peer):
        registered = _v2_value(view, node, f"/calico/bgp/v1/host/{spec.name}/ip_addr_v4")
        if registered is not None and registered != spec.ip:
            return BGP_WRONG_IP.at(f"{spec.name} registered {registered}, its IP is {spec.ip}")
    return BGP_CONNECTING.at(f"{node.name} -> {peer.ip}")


def _v2_value(view: ClusterView, node: NodeLike, key: str) -> str | None:
    answer = view.http(node, view.etcd_url(node.ip, f"/v2/keys{key}"))
    try:
        return json.loads(answer.body).get("node", {}).get("value") if answer.status == 200 else None
    except json.JSONDecodeError:
        return None


def check_bgp_port(view: ClusterView, node: NodeLike) -> Finding:
    rules = probes.rules_dropping_port(node, 179)
    if rules:
        return _fail("BGP port 179", node.name, f"{len(rules)} rule(s): {rules[0]}",
                     BGP_PORT_BLOCKED.at(f"{node.name} has `{rules[0]}`"))
    return _pass("BGP port 179", node.name, "no iptables rule drops TCP 179")


def check_bgp_address(view: ClusterView, node: NodeLike) -> Finding:
    key = f"/calico/bgp/v1/host/{node.name}/ip_addr_v4"
    value = _v2_value(view, node, key)
    if value == node.ip:
        return _pass("BGP address", node.name, f"{key} = {value}")
    if value is None:
        cause = etcd_access_cause(view, node)
        if cause:
            return _fail("BGP address", node.name, f"{key} cannot be read", cause)
        return _fail("BGP address", node.name, f"{key} missing", calico_down_cause(view, node)
                     if not probes.container_running(node, "calico-node") else BGP_WRONG_IP.at(node.name))
    return _fail("BGP address", node.name, f"{key} = {value}, node IP {node.ip}", BGP_WRONG_IP.at(node.name))


def check_ip_forwarding(view: ClusterView, node: NodeLike) -> Finding:
    value = probes.sysctl(node, "net.ipv4.ip_forward")
    if value == "1":
        return _pass("IP forwarding", node.name, "net.ipv4.ip_forward = 1")
    return _fail("IP forwarding", node.name, f"net.ipv4.ip_forward = {value or '?'}", IP_FORWARDING_OFF.at(node.name))


def check_rp_filter(view: ClusterView, node: NodeLike) -> Finding:
    value = probes.sysctl(node, "net.ipv4.conf.all.rp_filter")
    if value in ("0", "1"):
        return _pass("rp_filter", node.name, f"net.ipv4.conf.all.rp_filter = {value}")
    return _fail("rp_filter", node.name, f"net.ipv4.conf.all.rp_filter = {value or '?'}",
                 RP_FILTER_LOOSE.at(node.name))


def check_mtu(view: ClusterView, node: NodeLike) -> Finding:
    for peer in view.peers(node):
        if probes.ping(node, peer.ip, size=1472):
            continue
        if probes.ping(node, peer.ip):
            return _fail("MTU", node.name, f"1500-byte ping to {peer.ip} lost, small ping answered",
                         MTU_MISMATCH.at(f"{node.name} -> {peer.ip}"))
        return _fail("MTU", node.name, f"no ping answer from {peer.ip}",
                     HOST_UNREACHABLE.at(f"{node.name} -> {peer.ip}"))
    return _pass("MTU", node.name, "1500-byte packets pass to every peer (DF set)")


# -- the registry --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    name: str
    per_node: Callable[[ClusterView, NodeLike], Finding] | None = None
    cluster: Callable[[ClusterView], Finding] | None = None


CHECKS: tuple[Check, ...] = (
    Check("etcd member", per_node=check_etcd_member),
    Check("etcd loopback URL", per_node=check_etcd_loopback),
    Check("etcd v2 API", per_node=check_etcd_v2),
    Check("etcd cluster", cluster=check_etcd_cluster),
    Check("docker cluster store", per_node=check_docker_store),
    Check("calico networks shared", cluster=check_networks_shared),
    Check("calico-node", per_node=check_calico_node),
    Check("libnetwork plugin", per_node=check_plugin_sockets),
    Check("BIRD", per_node=check_bird),
    Check("BGP mesh", per_node=check_bgp_mesh),
    Check("BGP port 179", per_node=check_bgp_port),
    Check("BGP address", per_node=check_bgp_address),
    Check("IP forwarding", per_node=check_ip_forwarding),
    Check("rp_filter", per_node=check_rp_filter),
    Check("MTU", per_node=check_mtu),
)
CHECK_NAMES = tuple(c.name for c in CHECKS)


def run(view: ClusterView, only: Iterable[str] | None = None) -> list[Finding]:
    """Run the checks (all, or those named) on every node; a node that cannot be reached
    gives one failing finding instead of stopping the others."""
    wanted = set(only) if only is not None else set(CHECK_NAMES)
    unknown = wanted - set(CHECK_NAMES)
    if unknown:
        raise UserError(f"unknown check(s) {', '.join(sorted(unknown))}: known are {', '.join(CHECK_NAMES)}")
    view._cache.clear()  # answers are per run: the cluster changes between runs
    findings: list[Finding] = []
    reachable = dict(view.nodes)
    for name, node in view.nodes.items():
        try:
            node.run("true", timeout=30)
        except UserError as err:
            findings.append(_fail("SSH", name, str(err).split(":")[0], NODE_UNREACHABLE.at(name)))
            del reachable[name]
    if not reachable:
        return findings
    sub = ClusterView(view.cfg, reachable, view._cache) if len(reachable) != len(view.nodes) else view
    for check in CHECKS:
        if check.name not in wanted:
            continue
        if check.cluster is not None:
            findings.append(_guarded(check.name, "cluster", lambda c=check: c.cluster(sub)))
        if check.per_node is not None:
            for name, node in reachable.items():
                findings.append(_guarded(check.name, name, lambda c=check, n=node: c.per_node(sub, n)))
    return findings


def _guarded(check: str, node: str, fn: Callable[[], Finding]) -> Finding:
    try:
        return fn()
    except UserError as err:  # the node went away during the check
        return _fail(check, node, str(err), NODE_UNREACHABLE.at(node))


def first_failure(findings: Iterable[Finding]) -> Finding | None:
    return next((f for f in findings if not f.ok), None)


def explain(findings: Iterable[Finding]) -> str:
    """The findings that are not a plain pass, one per line (for assertion messages)."""
    lines = [f.line() for f in findings if f.result != PASS]
    return "\n".join(lines) if lines else "every check passes"

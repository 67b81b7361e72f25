"""Checks of calico-node, BIRD and the BGP mesh (guide section 6), and why a session is down:
the peer's view of it (session state, SYN-SENT sockets, ping), never the firewall rule text.
"""

from __future__ import annotations

import re
from pathlib import Path

from calicolab.core import node_commands
from calicolab.core.config import Node as NodeSpec
from calicolab.diagnose.diagnoses import (
    BGP_COLLISION,
    BGP_CONNECTING,
    BGP_PEER_DOWN,
    BGP_PORT_BLOCKED,
    BGP_SESSION_NEW,
    BGP_WRONG_IP,
    BIRD_DOWN,
    BIRD_RESTARTED,
    CALICO_NOT_RUNNING,
    CALICO_STARTED_BEFORE_ETCD,
    DOCKER_DOWN,
    FELIX_DOWN,
    FELIX_RESTARTED,
    HOST_UNREACHABLE,
    PLUGIN_SOCKETS_MISSING,
    WARN,
    Diagnosis,
    Finding,
)
from calicolab.diagnose.engine import ClusterView, failed, passed
from calicolab.diagnose.etcd import etcd_access_cause, healthy, v2_value
from calicolab.stack import parsers, probes
from calicolab.stack.probes import NodeLike

BIRD_SOCKET = probes.BIRD_CTL

CALICOCTL_SECONDS = 15  # it answers in well under a second when it works

BIRD_RECENT = 600  # a BIRD restart younger than this is worth a warning

BIRD_START_SLACK = 20  # BIRD starts a few seconds after the container's first process

# BIRD's default graceful-restart time (calico/node keeps it): a session younger than this may
# still be replacing the routes the peer kept while it was down. Long enough that a restart which
# is over in two seconds is still seen by a doctor run that starts after it.
SESSION_NEW = 120

# How far back the doctor looks for sessions dropped by a connection collision: the log's last
# lines (svlogd keeps more in rotated files), and the drops of the last hour among them.
COLLISION_LOG_LINES = 5000
COLLISION_RECENT = 3600

def calico_down_cause(view: ClusterView, node: NodeLike) -> Diagnosis:
    """Why calico-node does not run on this node."""
    if probes.unit_state(node, "docker") != "active":
        return DOCKER_DOWN.at(node.name)
    etcd = etcd_access_cause(view, node)
    if etcd:
        return etcd  # calico-node waits for (or gave up on) etcd: etcd is the root cause
    log = probes.journal(node, "calico-node", 60) + probes.ask(node, "docker logs --tail 40 calico-node 2>&1").stdout
    if re.search(r"is already using the IPv4 address", log):
        return BGP_WRONG_IP.at(node.name)
    if probes.unit_state(node, "calico-node") == "failed" and re.search(
            # calico/node v2.6.1's startup.go wording first, then the double's older one.
            r"Unable to access datastore to query node configuration|"
            r"etcd cluster is unavailable|Waiting for etcd|Error accessing the Calico datastore|"
            r"failed to start: .*etcd", log, re.IGNORECASE):
        return CALICO_STARTED_BEFORE_ETCD.at(node.name)
    return CALICO_NOT_RUNNING.at(node.name)

def check_calico_node(view: ClusterView, node: NodeLike) -> Finding:
    unit = probes.unit_state(node, "calico-node")
    running = probes.container_running(node, "calico-node")
    if unit == "active" and running:
        return passed("calico-node", node.name, "unit active, container running")
    seen = f"calico-node.service {unit}, container {'running' if running else 'not running'}"
    return failed("calico-node", node.name, seen, calico_down_cause(view, node))

def check_plugin_sockets(view: ClusterView, node: NodeLike) -> Finding:
    paths = [f"/run/docker/plugins/{s}.sock" for s in ("calico", "calico-ipam")]
    listening = probes.sockets_listening(node, paths)
    if all(listening.values()):
        return passed("libnetwork plugin", node.name, "/run/docker/plugins/calico{,-ipam}.sock listening")
    # A killed plugin leaves its socket file: present but with no listener is as bad as missing.
    seen = [f"{Path(p).name} {'stale (no listener)' if probes.socket_exists(node, p) else 'missing'}"
            for p, ok in listening.items() if not ok]
    return failed("libnetwork plugin", node.name, ", ".join(seen), PLUGIN_SOCKETS_MISSING.at(node.name))

def bird_processes(node: NodeLike) -> tuple[list[probes.Process] | None, list[probes.Process]]:
    procs = probes.container_processes(node, "calico-node")
    return procs, [p for p in procs or [] if p.command == "bird"]

def check_felix(view: ClusterView, node: NodeLike) -> Finding:
    procs = probes.container_processes(node, "calico-node")
    if procs is None:
        return failed("felix", node.name, "calico-node container not running", calico_down_cause(view, node))
    felixes = [p for p in procs if p.command == "calico-felix"]
    if not felixes:
        return failed("felix", node.name, "no calico-felix process inside calico-node", FELIX_DOWN.at(node.name))
    felix, oldest = min(felixes, key=lambda p: p.age), max(p.age for p in procs)
    if felix.age < BIRD_RECENT and oldest - felix.age > BIRD_START_SLACK:
        return Finding("felix", node.name, WARN, f"calico-felix (pid {felix.pid}) up {felix.age} s, "
                       f"calico-node up {oldest} s", FELIX_RESTARTED.at(node.name))
    return passed("felix", node.name, f"calico-felix pid {felix.pid}, up {felix.age} s")

def check_bird(view: ClusterView, node: NodeLike) -> Finding:
    procs, birds = bird_processes(node)
    if procs is None:
        return failed("BIRD", node.name, "calico-node container not running", calico_down_cause(view, node))
    if not birds:
        return failed("BIRD", node.name, "no bird process inside calico-node", BIRD_DOWN.at(node.name))
    if not probes.socket_exists(node, BIRD_SOCKET):
        return failed("BIRD", node.name, f"bird runs but {BIRD_SOCKET} is missing", BIRD_DOWN.at(node.name))
    bird, oldest = min(birds, key=lambda p: p.age), max(p.age for p in procs)
    if bird.age < BIRD_RECENT and oldest - bird.age > BIRD_START_SLACK:
        return Finding("BIRD", node.name, WARN, f"bird (pid {bird.pid}) up {bird.age} s, calico-node up {oldest} s",
                       BIRD_RESTARTED.at(node.name))
    return passed("BIRD", node.name, f"bird pid {bird.pid}, up {bird.age} s")

def node_status(view: ClusterView, node: NodeLike) -> tuple[parsers.CalicoNodeStatus, str]:
    """`calicoctl node status`, or BIRD's own table when calicoctl hangs (the double's
    calicoctl is a `docker run`, and Docker stalls while its cluster store has no quorum)."""
    if all(healthy(view, n) for n in view.nodes.values()):
        # By its path: CentOS 7's sudo secure_path has no /usr/local/bin. A missing calicoctl
        # raises CommandUnavailable (the check says so), never "Calico process is not running".
        res = probes.ask(node, node_commands.calicoctl("node status"), timeout=CALICOCTL_SECONDS)
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
        procs, birds = bird_processes(node)
        cause = BIRD_DOWN.at(node.name) if procs and not birds else calico_down_cause(view, node)
        return failed("BGP mesh", node.name, "Calico process is not running." + note, cause)
    peers = view.peers(node)
    problems = parsers.mesh_problems(status, [p.ip for p in peers])
    if not problems:
        seen = "Established with " + ", ".join(p.ip for p in peers)
        young = new_sessions(node, status)
        if young:
            ages = "; ".join(f"{row.address} up {age} s" for row, age in young)
            return Finding("BGP mesh", node.name, WARN, f"{seen} ({ages}){note}", BGP_SESSION_NEW.at(
                "; ".join(f"{node.name} <-> {row.address} Established since {row.since}" for row, _ in young)))
        return passed("BGP mesh", node.name, seen + note)
    rows = {p.address: p for p in status.ipv4_peers}
    # The cause of the first expected peer that is not Established; an extra row alone is a wrong address.
    peer = next((p for p in peers if not (p.ip in rows and rows[p.ip].established)), None)
    if peer is None:
        return failed("BGP mesh", node.name, "; ".join(problems) + note,
                      BGP_WRONG_IP.at(f"{node.name} sees {'; '.join(problems)}"))
    row = rows.get(peer.ip)
    return failed("BGP mesh", node.name, "; ".join(problems) + note,
                  session_cause(view, node, peer, row.info if row else ""))

def new_sessions(node: NodeLike, status: parsers.CalicoNodeStatus) -> list[tuple[parsers.BgpPeer, int]]:
    """The Established sessions younger than SESSION_NEW, with their age, by BIRD's own clock."""
    clock = probes.container_clock(node, "calico-node")
    if clock is None:
        return []
    aged = [(row, parsers.since_age(row.since, clock)) for row in status.ipv4_peers]
    return [(row, age) for row, age in aged if age is not None and age < SESSION_NEW]

def session_cause(view: ClusterView, node: NodeLike, peer: NodeSpec, info: str = "") -> Diagnosis:
    """Why the BGP session from node to peer is not Established, from what the two ends see:
    the processes, the row's INFO (BIRD's last error, e.g. `Active Socket: Connection refused`),
    SYN-SENT sockets in either kernel's table, ping. Never from a firewall rule's text (a rule
    says what someone wrote, not what the session meets), and nothing here connects to BIRD's
    port itself: BIRD would take a probe for its peer, and its close for an error."""
    procs, birds = bird_processes(node)
    if procs is None:
        return calico_down_cause(view, node)
    if not birds:
        return BIRD_DOWN.at(node.name)
    text = info.lower()
    if ("no route" in text or "unreachable" in text) and not probes.ping(node, peer.ip):
        # Before the peer's processes: a peer cut off from the private network also loses etcd,
        # so its calico-node is down too, and "not listening" would send the user to the wrong end
        # (Debian VM lane: both nodes' etcd lost each other, then node2's calico-node).
        return HOST_UNREACHABLE.at(f"{node.name} -> {peer.ip} ({info})")
    other = view.nodes.get(peer.name)
    if other is not None:
        peer_procs, peer_birds = bird_processes(other)
        if peer_procs is None:
            return BGP_PEER_DOWN.at(f"{peer.name} (calico-node not running)")
        if not peer_birds:
            return BGP_PEER_DOWN.at(f"{peer.name} (no bird inside calico-node)")
    if "refused" in text:
        return BGP_PEER_DOWN.at(f"{node.name} -> {peer.ip}:179 refused")
    # A SYN that gets no answer, seen from either end of the session.
    silent = [f"{node.name} -> {peer.ip}:179"] if probes.connecting(node, peer.ip, 179) else []
    if other is not None and probes.connecting(other, node.ip, 179):
        silent.append(f"{peer.name} -> {node.ip}:179")
    unanswered = bool(silent) or "timed out" in text
    if unanswered or "no route" in text or "unreachable" in text:
        if not probes.ping(node, peer.ip):
            return HOST_UNREACHABLE.at(f"{node.name} -> {peer.ip}")
        if unanswered:
            evidence = " and ".join(silent) + " SYN unanswered" if silent else f"BIRD on {node.name}: {info}"
            return BGP_PORT_BLOCKED.at(f"{evidence}, while ping {node.name} -> {peer.ip} answers")
    for spec in (view.spec(node), peer):
        registered = v2_value(view, node, f"/calico/bgp/v1/host/{spec.name}/ip_addr_v4")
        if registered is not None and registered != spec.ip:
            return BGP_WRONG_IP.at(f"{spec.name} registered {registered}, its IP is {spec.ip}")
    return BGP_CONNECTING.at(f"{node.name} -> {peer.ip}")


def check_bgp_port(view: ClusterView, node: NodeLike) -> Finding:
    """The firewall rules themselves (the failure table's "firewall rules dropping TCP 179"):
    a rule can exist before any session meets it, so it is reported on its own."""
    rules = probes.rules_dropping_port(node, 179)
    if rules:
        return failed("BGP port 179", node.name, f"{len(rules)} rule(s): {rules[0]}",
                     BGP_PORT_BLOCKED.at(f"{node.name} has `{rules[0]}`"))
    return passed("BGP port 179", node.name, "no iptables rule drops TCP 179")

def check_bgp_address(view: ClusterView, node: NodeLike) -> Finding:
    key = f"/calico/bgp/v1/host/{node.name}/ip_addr_v4"
    value = v2_value(view, node, key)
    if value == node.ip:
        return passed("BGP address", node.name, f"{key} = {value}")
    if value is None:
        cause = etcd_access_cause(view, node)
        if cause:
            return failed("BGP address", node.name, f"{key} cannot be read", cause)
        return failed("BGP address", node.name, f"{key} missing", calico_down_cause(view, node)
                     if not probes.container_running(node, "calico-node") else BGP_WRONG_IP.at(node.name))
    return failed("BGP address", node.name, f"{key} = {value}, node IP {node.ip}", BGP_WRONG_IP.at(node.name))


def check_bgp_collisions(view: ClusterView) -> Finding:
    """Sessions dropped by Calico 2.6's BGP connection collision in the last hour, told from every
    node's BIRD log by BIRD's own words (parsers.bgp_drops): what happened, and the outage each
    cost (until the protocol was up again). A warning: it has healed by itself."""
    logs: dict[str, str] = {}
    now: float | None = None
    for name, node in view.nodes.items():
        res = node.run(f"tail -n {COLLISION_LOG_LINES} {probes.BIRD_LOG} 2>/dev/null; echo; date -u +%s")
        text, _, clock = res.stdout.rstrip().rpartition("\n")
        logs[name] = text
        if clock.strip().isdigit():
            now = max(now or 0.0, float(clock))
    drops = [d for d in parsers.bgp_drops(logs) if d.collision and d.when is not None
             and (now is None or now - d.when <= COLLISION_RECENT)]
    if not drops:
        return passed("BGP collision", "cluster", "no BGP session dropped by a connection collision in the "
                      f"last {COLLISION_RECENT // 60} min of the BIRD logs")
    lost = sum(d.outage_s or 0.0 for d in drops)
    seen = "; ".join(f"{d.node} {d.protocol} at {d.at}: shape {d.shape}" +
                     (f", routes back after {d.outage_s:.1f} s" if d.outage_s is not None else "") for d in drops)
    return Finding("BGP collision", "cluster", WARN, f"{len(drops)} session(s) dropped by collision, "
                   f"{lost:.1f} s without the peer's routes in all: {seen}",
                   BGP_COLLISION.at(f"{seen} ({probes.BIRD_LOG})"))

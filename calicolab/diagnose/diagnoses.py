"""Named diagnoses: a symptom on the live nodes mapped to its usual cause and fix.

The catalogue covers the guide's three etcd errors and the failure table of the stack
(docs: stack-facts.md): etcd member down or stale, no quorum, v2 API off, loopback client
URL, Docker's cluster store, the libnetwork sockets, calico-node and BIRD, BGP port, peer
and address, IP forwarding, rp_filter and MTU. The checks that find them on live nodes
live in calicolab/diagnose/ (checks.py lists them) and return Findings (result + what was seen + diagnosis);
`invoke doctor` prints them, e2e assertion messages and the fault-injection tests use them
to name a cause.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Diagnosis:
    name: str
    cause: str  # the catalogue's text: the same for every place it is seen
    fix: str
    where: str = ""  # what was seen where (a node, a peer and the evidence), set by the check

    def text(self) -> str:
        return f"{self.placed()} -> {self.fix}"

    def placed(self) -> str:
        return f"{self.where}: {self.cause}" if self.where else self.cause

    def at(self, where: str) -> Diagnosis:
        """The same diagnosis with the place and evidence it was seen with."""
        return replace(self, where=where)


# -- the catalogue --------------------------------------------------------------------------
# The guide's three etcd errors.
ETCD_STALE_DATA = Diagnosis(
    "etcd stale data dir", "`member ... has already been bootstrapped` / cluster ID mismatch: the data "
    "dir holds an earlier cluster", "stop etcd and empty /var/lib/etcd/default.etcd on the member, then start "
    "all members together")
ETCD_LOOPBACK = Diagnosis(
    "etcdctl 127.0.0.1:4001", "`dial tcp 127.0.0.1:4001`: no etcd client URL on loopback, so etcdctl "
    "without --endpoints fails", "add ,http://127.0.0.1:2379 to ETCD_LISTEN_CLIENT_URLS and restart etcd")
ETCD_PUBLISH_TIMEOUT = Diagnosis(
    "etcd publish timeout", "`publish error: etcdserver: request timed out`: no quorum, the member waits "
    "for its peer (started alone, TCP 2380 blocked or a wrong ETCD_INITIAL_CLUSTER)",
    "start all members at the same time; check `etcdctl member list` and TCP 2380 both ways")
# The failure table.
ETCD_MEMBER_DOWN = Diagnosis(
    "etcd member down", "etcd is not running on this member: the cluster is degraded (with two "
    "members one down means no quorum, so writes from Calico and Docker stall)",
    "`systemctl start etcd` on that node; `journalctl -u etcd` says why it stopped")
ETCD_NOT_SERVING = Diagnosis(
    "etcd client URL", "etcd runs but does not answer on its client URL (ETCD_LISTEN_CLIENT_URLS, or TLS "
    "settings that do not match)", "compare ETCD_LISTEN_CLIENT_URLS in /etc/etcd/etcd.conf with the node IP; "
    "`journalctl -u etcd`")
ETCD_PEER_PORT_BLOCKED = Diagnosis(
    "etcd peer port blocked", "the members run but cannot reach each other on TCP 2380: no quorum",
    "allow TCP 2380 both ways between the nodes (the guide turns firewalld off)")
ETCD_V2_OFF = Diagnosis(
    "etcd v2 API off", "etcd serves no v2 API (3.4+ needs --enable-v2): /v2/keys answers 404, so Calico 2.6 "
    "and Docker's cluster store cannot read or write (`etcd cluster is unavailable or misconfigured`)",
    "set ETCD_ENABLE_V2=\"true\" (--enable-v2=true) in /etc/etcd/etcd.conf and restart all members together")
DOCKER_DOWN = Diagnosis(
    "docker down", "the Docker engine is not running, so neither calico-node nor workloads can run",
    "`systemctl status docker`, `journalctl -u docker`; start it")
DOCKER_STORE_MISSING = Diagnosis(
    "no cluster store", "Docker has no cluster store: a network created on one host stays on that host",
    "set \"cluster-store\": \"etcd://<node ip>:2379\" in /etc/docker/daemon.json and restart docker")
DOCKER_STORE_UNREACHABLE = Diagnosis(
    "cluster store unreachable", "Docker's cluster store does not answer "
    "(`etcd cluster is unavailable or misconfigured`)",
    "point cluster-store in /etc/docker/daemon.json at a running etcd member and restart docker")
NETWORK_NOT_SHARED = Diagnosis(
    "network not shared", "a Calico network exists on one host only: that host's Docker has no (or another) "
    "cluster store", "check `docker info | grep 'Cluster Store'` on every node; fix daemon.json, restart docker")
PLUGIN_SOCKETS_MISSING = Diagnosis(
    "plugin sockets missing", "/run/docker/plugins/calico*.sock missing, so Docker says `plugin \"calico\" "
    "not found`: calico-node is not running or CALICO_LIBNETWORK_ENABLED is not true",
    "start calico-node with CALICO_LIBNETWORK_ENABLED=true and /run/docker/plugins mounted")
CALICO_NOT_RUNNING = Diagnosis(
    "calico-node down", "calico-node is not running (unit failed, or it started before etcd was reachable)",
    "`systemctl status calico-node`, `docker logs calico-node`; restart it once etcd is healthy")
CALICO_STARTED_BEFORE_ETCD = Diagnosis(
    "calico-node started before etcd", "calico-node gave up at start because etcd was not reachable then "
    "(it is now): the unit orders itself after docker only", "`systemctl restart calico-node`; order the unit "
    "After=etcd.service or give it more start attempts")
BIRD_DOWN = Diagnosis(
    "BIRD down", "BIRD is not running inside calico-node: no BGP sessions, no routes to the other host's "
    "blocks (routes already learnt persist)", "runit inside calico-node restarts it; if it stays down, read "
    "/var/log/calico/bird/current and `systemctl restart calico-node`")
BIRD_RESTARTED = Diagnosis(
    "BIRD restarted", "BIRD inside calico-node died and was restarted after calico-node started: its BGP "
    "sessions started over (graceful restart keeps the routes meanwhile)",
    "find why it exited (/var/log/calico/bird/current, `dmesg`); sessions come back on their own")
FELIX_DOWN = Diagnosis(
    "felix down", "felix is not running inside calico-node: new workloads get no route, neighbour entry or "
    "policy chains, and `calicoctl node status` says `Calico process is not running.`",
    "runit inside calico-node restarts it; if it keeps exiting, read /var/log/calico/felix/current "
    "(rp_filter=2 makes it exit at start)")
FELIX_RESTARTED = Diagnosis(
    "felix restarted", "felix inside calico-node died and was restarted after calico-node started",
    "find why it exited in /var/log/calico/felix/current; it resyncs the dataplane on its own")
BGP_PORT_BLOCKED = Diagnosis(
    "BGP port blocked", "BGP (TCP 179) to the peer gets no answer: a firewall drops it between the nodes",
    "allow TCP 179 both ways between the nodes (the guide turns firewalld off)")
BGP_PEER_DOWN = Diagnosis(
    "BGP peer not listening", "the peer refuses TCP 179: BIRD (calico-node) is not running on the peer",
    "check `systemctl status calico-node` and `calicoctl node status` on the peer")
BGP_WRONG_IP = Diagnosis(
    "BGP address", "the node registered a different BGP address (CALICO_IP) or a clashing node name",
    "compare /calico/bgp/v1/host/<node>/ip_addr_v4 with the node's IP; fix CALICO_IP in calico.env")
BGP_CONNECTING = Diagnosis(
    "BGP session starting", "both BIRDs listen and the port is open: the session is (re)starting",
    "wait BIRD's start delay (5 s) or connect-retry time (120 s; BIRD's defaults, which calico/node keeps); "
    "if it stays, see `birdcl show protocols all`")
BGP_SESSION_NEW = Diagnosis(
    "BGP session new", "the session came up within BIRD's graceful-restart time (120 s): one end's BIRD or "
    "calico-node (re)started, or the connection dropped and came back; the peer's routes may still be "
    "refreshing",
    "nothing if it stays up; if SINCE keeps moving in `calicoctl node status`, the session flaps: read "
    "/var/log/calico/bird/current on both nodes")
HOST_UNREACHABLE = Diagnosis(
    "peer unreachable", "the other node does not answer ping on the private network",
    "check the nodes' private network (eth1 / the VM's host-only network) and `ip addr`")
IP_FORWARDING_OFF = Diagnosis(
    "IP forwarding off", "net.ipv4.ip_forward is 0: the host does not route workload traffic",
    "net.ipv4.ip_forward=1 in /etc/sysctl.conf, then `sysctl -p`")
RP_FILTER_LOOSE = Diagnosis(
    "rp_filter loose", "net.ipv4.conf.all.rp_filter is 2 (loose): Calico's felix exits at start",
    "net.ipv4.conf.all.rp_filter=1 in /etc/sysctl.conf, then `sysctl -p`")
MTU_MISMATCH = Diagnosis(
    "MTU mismatch", "full-sized packets (1500 bytes, DF set) are lost between the nodes while small ones pass",
    "give both nodes' interfaces and the network between them the same MTU (or lower the workload MTU)")
# Calico 2.6's own behaviour, not a fault: after a restart both BIRDs connect at once (the mesh is
# bidirectional) and BIRD 1.6 drops the new session by collision (recorded BIRD logs:
# tests/unit/fixtures/bird_collision/README.md).
BGP_COLLISION = Diagnosis(
    "BGP collision", "a new BGP session was dropped by a connection collision as it came up: both BIRDs "
    "connected at once after a restart, and BIRD 1.6 took the second connection for a graceful restart "
    "(proto/bgp/bgp.c bgp_incoming_connection, shape A) or resolved it with Cease 7 (proto/bgp/packets.c "
    "bgp_rx_open, shape B); the routes the peer kept by graceful restart were flushed until the next session. "
    "Calico 2.6's node-to-node mesh connects both ways; fixed in Calico 3.4 (projectcalico/node 1183be5, "
    "PR #79: one-way mesh connections)",
    "nothing to repair: the next session restores the routes (BIRD's 4-5 s connect delay); Calico >= 3.4 "
    "does not collide; restarting one node at a time makes it rarer")
# Not a component's state: the check's own command did not run (exit 127 or 126, or sudo refused),
# so nothing is known about the component it asks. `where` names the command, node and PATH.
COMMAND_UNAVAILABLE = Diagnosis(
    "command missing", "the command is missing or cannot run on the node (not found in sudo's PATH, not "
    "executable, or sudo refused): this says nothing about the component it asks",
    "install the command on the node or call it by its absolute path (calicolab/core/node_commands.py; CentOS 7's "
    "sudo secure_path is /sbin:/bin:/usr/sbin:/usr/bin, without /usr/local/bin); "
    "`sudo -n sh -c 'command -v <command>; echo $PATH'` on the node shows what sudo finds")
NODE_UNREACHABLE = Diagnosis(
    "node unreachable", "the node does not answer over SSH", "is the cluster up? `invoke up`")


def bgp_state(info: str, state: str) -> Diagnosis:
    """Which cause fits a BGP row that is not Established, from the row alone (the checks
    below probe the nodes and are more precise)."""
    text = info.lower()
    if "refused" in text:
        return BGP_PEER_DOWN
    if state in ("", "down"):
        return CALICO_NOT_RUNNING
    return BGP_PORT_BLOCKED


# -- findings -------------------------------------------------
PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass(frozen=True)
class Finding:
    check: str
    node: str  # a node name, or "cluster" for checks across nodes
    result: str  # pass | warn | fail
    seen: str
    diagnosis: Diagnosis | None = None

    @property
    def ok(self) -> bool:
        return self.result != FAIL

    def line(self) -> str:
        text = f"{self.check} on {self.node}: {self.result}: {self.seen}"
        return text + (f"\n    likely cause: {self.diagnosis.text()}" if self.diagnosis else "")

    def to_json(self) -> dict[str, object]:
        diag = self.diagnosis
        return {"check": self.check, "node": self.node, "result": self.result, "seen": self.seen,
                "diagnosis": None if diag is None else {"name": diag.name, "where": diag.where, "cause": diag.cause,
                                                        "fix": diag.fix}}

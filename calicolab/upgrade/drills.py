"""Drills on the states operators get stuck in: an etcd cluster half upgraded (the dwell), the
upgraded member rolled back from there, and a restore from backups after the cluster broke.

Dwell: the first member moves to the next minor on the path and the cluster stays there. A
mixed cluster runs at the lowest common version (etcd's upgrade guides: "operates with the
protocol of the lowest common version"), so the read-only checks run there, then each member
is killed in turn (the old one, then the new one) while etcd clients record a history, and
the history, the keyspace and the workloads' traffic are checked across all of it.

Rollback: from the dwell, the new member goes back to the old version with its data directory
kept, as etcd's downgrade guides do it member by member; possible only while the cluster
version has not moved (once every member ran the new minor, an older member refuses to start:
"cluster cannot be downgraded"; calicolab/core/versions.py refuses that path with the reason).

Restore: the v2 keyspace Calico 2.6 and Docker use is backed up key by key (with its empty
folders) and, from etcd 3.4, a v3 snapshot is saved too. Both members are stopped and their data
removed (calico-node stopped first: Felix and confd would act on an empty keyspace); the
cluster is made again from the snapshot (`snapshot restore` on every member, etcd's
v3 disaster recovery) or empty, and the v2 keys are written back: a v3 snapshot holds the v3
backend only, not the v2 store, which the drill shows by counting /calico and /docker between the
two. Calico and Docker must then work with 0 keys lost: every key and value as before, BGP
Established, the workloads reaching each other, a new workload given an address nobody holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from calicolab.core import state, versions
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import StageFailed, UserError
from calicolab.core.polling import Timeout, wait_for
from calicolab.core.remote import Node
from calicolab.etcd_history import recording
from calicolab.measure import bgp_watch
from calicolab.stack import etcd_query, etcd_stop, impairments, keyspace, workloads
from calicolab.upgrade.upgrader import GATE_DEADLINE, STOP_DEADLINE, Upgrader
from provision import etcd as etcd_section

NETWORK = "drillnet"
PEER_PORT = 2380  # etcd members talk raft here
QUORUM_LOST_DEADLINE = 30  # a survivor notices its lost quorum after an election timeout (1 s by default)


@dataclass
class Check:
    what: str
    expected: str
    seen: str

    @property
    def ok(self) -> bool:
        return self.expected == self.seen


@dataclass
class Fault:
    what: str
    down_s: float = 0.0  # from `systemctl stop` until it was started again
    recovered_s: float = 0.0  # from the start until every member is healthy with a leader


@dataclass
class DrillResult:
    name: str  # dwell | rollback | restore
    versions: dict[str, str] = field(default_factory=dict)  # member -> etcd version at the end
    checks: list[Check] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    keys: keyspace.KeyDiff = field(default_factory=keyspace.KeyDiff)
    keys_before: int = 0
    keys_after: int = 0
    during: tuple[int, int] | None = None  # background ping (sent, received) across the drill
    pings: dict[str, int | None] = field(default_factory=dict)  # old and new workloads at the end
    history: recording.HistoryReport | None = None
    impairments: list[dict[str, object]] = field(default_factory=list)  # impairments.Applied.to_json
    seconds: float = 0.0
    before: dict[str, str] = field(default_factory=dict)  # the keyspace snapshots, for grading
    after: dict[str, str] = field(default_factory=dict)
    # BGP sessions dropped while calico-node started again (restore), from both nodes' BIRD logs
    # at debug level, with shape and lines (parsers.BgpDrop.to_json); sessions_dropped: the
    # connection collisions among them (Calico 2.6's, excused per drop), one line each.
    bgp_drops: list[dict[str, object]] = field(default_factory=list)
    sessions_dropped: list[str] = field(default_factory=list)

    @property
    def component(self) -> str:
        return f"etcd {self.name} drill"

    @property
    def problems(self) -> list[str]:
        found = [f"{c.what}: expected {c.expected}, seen {c.seen}" for c in self.checks if not c.ok]
        if not self.keys.clean:
            found.append(f"keyspace: {self.keys.summary()}")
        found += [f"ping {pair} failed" for pair, ttl in self.pings.items() if ttl is None]
        if self.history is not None:
            found += self.history.problems
        return found

    def summary(self) -> str:
        lines = [f"drill {self.name}: etcd members {self.versions}, {self.seconds:.1f} s"]
        lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.what}: {c.seen}" +
                  ("" if c.ok else f" (expected {c.expected})") for c in self.checks]
        lines += [f"  fault {f.what}: down {f.down_s:.1f} s, healthy again {f.recovered_s:.1f} s after the start"
                  for f in self.faults]
        lines.append(f"  keyspace /calico + /docker ({self.keys_before} keys before, {self.keys_after} after): "
                     f"{self.keys.summary()}")
        if self.during:
            sent, got = self.during
            lines.append(f"  background ping across the drill: {got}/{sent} replies")
        for d in self.bgp_drops:
            kind = f"shape {d['shape']}" if d.get("collision") else "not a collision"
            lines.append(f"  BGP session dropped: {d['node']}: {d['protocol']} at {d['at']}: {kind} ({d['cause']})")
            lines += [f"      {line}" for line in [*d.get("lines", []), *d.get("echo", [])]]  # type: ignore[misc]
        lines.append(f"  pings at the end: {self.pings}")
        lines += [f"  impairment {i['what']} on {', '.join(i['nodes'])} for {i['seconds']} s: {i['dropped']} of "
                  f"{i['seen']} packets dropped" for i in self.impairments]
        if self.history is not None:
            lines.append("  " + recording.summary(self.history))
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "versions": self.versions, "problems": self.problems,
                "checks": [asdict(c) | {"ok": c.ok} for c in self.checks],
                "faults": [asdict(f) for f in self.faults], "keys": asdict(self.keys),
                "keys_before": self.keys_before, "keys_after": self.keys_after, "during": self.during,
                "pings": self.pings, "impairments": self.impairments,
                "history": self.history.to_json() if self.history else None,
                "sessions_dropped": self.sessions_dropped, "bgp_drops": self.bgp_drops, "seconds": self.seconds}


# -- etcd as the drills see it ----------------------------------------------------------
def _get(node: Node, ip: str, path: str) -> dict:
    res = node.run(etcd_query.curl_command(ip, path, "-sS -m 5"))
    try:
        return json.loads(res.stdout or "{}") if res.ok else {}
    except ValueError:
        return {}


def member_versions(cfg: ClusterConfig, nodes: list[Node]) -> dict[str, str]:
    return {n.name: _get(n, cfg.node(n.name).ip, "/version").get("etcdserver", "") or "down" for n in nodes}


def cluster_version(cfg: ClusterConfig, nodes: list[Node]) -> str:
    for n in nodes:
        seen = _get(n, cfg.node(n.name).ip, "/version").get("etcdcluster", "")
        if seen:
            return seen
    return "none"


def _has_leader(cfg: ClusterConfig, node: Node) -> bool:
    """Whether the member names a leader now. Its maintenance Status through the JSON gateway
    (/v3beta below 3.4, /v3 from 3.4, by the member's own version) leaves the leader out while it
    has none; v2's /v2/stats/self keeps naming the last leader after the quorum is gone (seen)."""
    ip = cfg.node(node.name).ip
    version = _get(node, ip, "/version").get("etcdserver", "")
    if not version:
        return False
    prefix = "/v3beta" if versions.parse(version)[:2] < (3, 4) else "/v3"
    res = node.run(etcd_query.curl_command(ip, f"{prefix}/maintenance/status", "-sS -m 5 -X POST -d '{}'"))
    try:
        return res.ok and str(json.loads(res.stdout or "{}").get("leader", "0")) not in ("", "0")
    except ValueError:
        return False


def _healthy(cfg: ClusterConfig, nodes: list[Node]) -> bool:
    return all(_get(n, cfg.node(n.name).ip, "/health").get("health") in ("true", True) for n in nodes)


def lowest_common(members: dict[str, str]) -> str:
    """The cluster version a mixed cluster runs at, from first principles: the lowest member's minor, .0."""
    low = min(versions.parse(v) for v in members.values())
    return f"{low[0]}.{low[1]}.0"


def stop_member_until_quorum_lost(cfg: ClusterConfig, nodes: list[Node], victim: Node) -> Fault:
    """Kill one member until the other notices (it names no leader: two members need both for a
    quorum), start it again, and time until every member is healthy."""
    fault = Fault(f"etcd on {victim.name} killed")
    stopped = time.monotonic()
    # A crash (SIGKILL), then `stop` so systemd does not restart it: a graceful stop of etcd 3.3
    # can wait out systemd's 90 s while clients hold v2 watches open (seen), and a crash asks
    # more of etcd (an acknowledged write must already be on disk).
    victim.run("systemctl kill --signal=SIGKILL etcd; systemctl stop etcd", check=True, timeout=STOP_DEADLINE)
    survivors = [n for n in nodes if n is not victim]
    # Without the victim a majority is left only with three members or more.
    quorum_kept = len(survivors) > len(nodes) // 2
    try:
        wait_for(lambda: [_has_leader(cfg, n) for n in survivors], lambda s: all(s) if quorum_kept else not any(s),
                 f"the members left {'keep a leader' if quorum_kept else 'see the quorum lost'} after stopping "
                 f"{victim.name}", timeout=QUORUM_LOST_DEADLINE)
    except Timeout as err:
        victim.run("systemctl start etcd", timeout=120)
        raise StageFailed(f"stopping etcd on {victim.name}: the other members did not "
                          f"{'keep a leader' if quorum_kept else 'lose their leader'} within "
                          f"{QUORUM_LOST_DEADLINE} s (leader seen per member: {err.last})") from None
    victim.run("systemctl start etcd", check=True, timeout=120)
    started = time.monotonic()
    fault.down_s = round(started - stopped, 1)
    try:
        wait_for(lambda: _healthy(cfg, nodes) and all(_has_leader(cfg, n) for n in nodes), bool,
                 f"etcd healthy again after {victim.name} came back", timeout=GATE_DEADLINE)
    except Timeout:
        raise StageFailed(f"etcd did not become healthy within {GATE_DEADLINE} s after {victim.name} was "
                          "started again; see `journalctl -u etcd`") from None
    fault.recovered_s = round(time.monotonic() - started, 1)
    return fault


# -- the drills -----------------------------------------------------------------------------
class _Watched:
    """Workloads on both nodes with a background ping, the keyspace before, and etcd clients
    recording a history, for as long as a drill runs."""

    def __init__(self, cfg: ClusterConfig, nodes: list[Node], label: str) -> None:
        self.cfg, self.nodes, self.label = cfg, nodes, label
        self.names = [f"drill-{n.name}" for n in nodes]
        self.new_names = [f"drill-new-{n.name}" for n in nodes]
        self.running: list[workloads.Workload] = []
        self.before: dict[str, str] = {}
        self.clients: recording.Recording | None = None

    def start(self, record: bool = True) -> None:
        workloads.remove(self.nodes, self.names + self.new_names, NETWORK)  # an interrupted drill's
        workloads.ensure_network(self.nodes[0], NETWORK)
        self.running = workloads.start_each(self.nodes, self.names, NETWORK)
        self.before = keyspace.snapshot(self.nodes[0], self.cfg.node(self.nodes[0].name).ip)
        workloads.start_background_ping(self.running[0], self.running[1], seconds=900)
        if record:
            self.clients = recording.Recording(self.cfg, self.cfg.reports_path / "histories", self.label,
                                               self.cfg.plants.history)
            self.clients.start()

    def finish(self, result: DrillResult, cfg: ClusterConfig) -> None:
        if self.clients is not None:
            result.history = self.clients.stop()
            self.clients = None
        result.during = workloads.stop_background_ping(self.running[0])
        after = keyspace.snapshot(self.nodes[0], cfg.node(self.nodes[0].name).ip)
        result.before, result.after = self.before, after
        result.keys_before, result.keys_after = len(self.before), len(after)
        result.keys = keyspace.diff(self.before, after)
        old = [workloads.refresh(w) for w in self.running]
        new = workloads.start_each(self.nodes, self.new_names, NETWORK)
        everyone = old + new
        result.pings = {f"{a.name}->{b.name}": workloads.ping_ttl(a, b)
                        for a in everyone for b in everyone if a.node is not b.node}
        addresses = [w.ip for w in everyone]
        result.checks.append(Check("every workload's address handed out once", str(len(addresses)),
                                   str(len(set(addresses)))))

    def remove(self) -> None:
        if self.clients is not None:
            self.clients.stop()
        workloads.remove(self.nodes, self.names + self.new_names, NETWORK)


def next_minor(cfg: ClusterConfig, target: str) -> str:
    path = versions.upgrade_path("etcd", cfg.versions.etcd, target, cfg.install_target)
    if not path or versions.parse(path[0])[:2] == versions.parse(cfg.versions.etcd)[:2]:
        newest = versions.newest("etcd", cfg.install_target)
        hint = (f"give e.g. --etcd {newest}" if versions.parse(newest)[:2] > versions.parse(cfg.versions.etcd)[:2]
                else "bring the cluster up at an older etcd, e.g. invoke e2e --etcd 3.3.25 --destroy never")
        raise UserError(f"a dwell needs a member on a newer minor: etcd {target} is not a minor above the "
                        f"running {cfg.versions.etcd} ({hint})")
    return path[0]


def dwell(cfg: ClusterConfig, nodes: list[Node], target: str, rollback: bool = False,
          say: Callable[[str], None] = print, partition_s: float = 0.0) -> DrillResult:
    """The first member on the next minor towards target, checks and faults there, and (with
    rollback) that member back to the old version; the cluster's recorded versions stay the old
    ones throughout (the cluster runs at the lowest common version). With partition_s, etcd's
    peer port 2380 is partitioned between the nodes for that long from the start of the first
    member's upgrade (the member comes back into a partition; its gate waits for the heal)."""
    old, new = cfg.versions.etcd, next_minor(cfg, target)
    result = DrillResult("rollback" if rollback else "dwell")
    began = time.monotonic()
    upgrader = Upgrader(cfg, nodes, say)
    first = nodes[0]
    watched = _Watched(cfg, nodes, f"drill-{result.name}-{new}")
    try:
        watched.start()
        say(f"    dwell: etcd {old} -> {new} on {first.name} only")
        if partition_s:
            # From the moment the upgraded member answers again: it rejoins into a partition, and
            # its gate (every member healthy) waits for the heal.
            cut = impairments.Impairment("partition", PEER_PORT)
            say(f"    dwell: {cut.describe()} for {partition_s:.0f} s once etcd {new} answers on {first.name}")
            spec = cfg.node(first.name)
            timed = impairments.Timed(cfg, cut, partition_s, when=lambda own: _get(
                own[first.name], spec.ip, "/version").get("etcdserver") == new).start()
            try:
                upgrader.etcd_member(first, old, new)
            except BaseException:
                timed.cancel()
                raise
            applied = timed.join()
            result.impairments.append(applied.to_json())
            result.checks.append(Check(f"the peer-port partition dropped packets ({cut.describe()})", "yes",
                                       "yes" if applied.dropped > 0 else "no: nothing matched the DROP rules"))
        else:
            upgrader.etcd_member(first, old, new)
        members = member_versions(cfg, nodes)
        want = {n.name: (new if n is first else old) for n in nodes}
        result.checks.append(Check("members' versions in the dwell", json.dumps(want, sort_keys=True),
                                   json.dumps(members, sort_keys=True)))
        result.checks.append(Check("cluster version in the dwell (the lowest common)", lowest_common(want),
                                   cluster_version(cfg, nodes)))
        result.checks.append(Check("BGP mesh in the dwell", "Established on every node",
                                   "Established on every node" if all(upgrader.mesh_established(n) for n in nodes)
                                   else "not Established everywhere"))
        ttl = workloads.ping_ttl(watched.running[0], watched.running[1])
        result.checks.append(Check("workload ping across the nodes in the dwell", "answered",
                                   "answered" if ttl else "no reply"))
        say("    dwell: the old member stopped, then the new one")
        for victim in [n for n in nodes if n is not first] + [first]:
            result.faults.append(stop_member_until_quorum_lost(cfg, nodes, victim))
        if rollback:
            say(f"    rollback: etcd {new} -> {old} on {first.name}, its data directory kept")
            upgrader.etcd_member(first, new, old)
            result.checks.append(Check("members' versions after the rollback",
                                       json.dumps({n.name: old for n in nodes}, sort_keys=True),
                                       json.dumps(member_versions(cfg, nodes), sort_keys=True)))
            result.checks.append(Check("cluster version after the rollback", lowest_common({"all": old}),
                                       cluster_version(cfg, nodes)))
        watched.finish(result, cfg)
        result.versions = member_versions(cfg, nodes)
    finally:
        watched.remove()
        result.seconds = round(time.monotonic() - began, 1)
    if not rollback:
        # Later tasks must know the cluster is mixed: the member's version is kept in the run state.
        state.update(cfg, etcd_members=result.versions)
    else:
        state.update(cfg, etcd_members={})
    return result



# -- restore ----------------------------------------------------------------------------
SNAPSHOT = "/var/lib/calicolab-etcd-snapshot.db"
CHUNK = 64 * 1024  # base64 characters per command: well under Linux's 128 KiB limit per argument


@dataclass
class V2Backup:
    keys: dict[str, str]
    dirs: list[str]  # empty directories, which writing the keys back would not make again


def v2_backup(node: Node, ip: str) -> V2Backup:
    """Every key under /calico and /docker with its value, and the empty directories (Calico
    keeps some, e.g. a profile's tags folder)."""
    try:
        keys, dirs = keyspace.read_trees(node, ip)
    except RuntimeError as err:
        raise StageFailed(f"cannot back up the v2 keyspace: {err}") from None
    return V2Backup(keys, dirs)


def v2_restore(node: Node, ip: str, backup: V2Backup) -> None:
    """The keys written back one by one (their parent folders are made on the way), then the
    empty folders."""
    for key, value in sorted(backup.keys.items()):
        res = etcd_query.v2_put(node, ip, key, value)
        if not res.ok:
            raise StageFailed(f"{node.name}: writing {key} back failed: {res.describe()}")
    for folder in backup.dirs:
        res = etcd_query.client_request(node, ip, f"/v2/keys{folder}", "-sS -f -X PUT -d dir=true")
        if not res.ok and "105" not in res.stdout:  # 105: the folder exists already
            raise StageFailed(f"{node.name}: making folder {folder} failed: {res.describe()}")


def copy_file(src: Node, dst: Node, path: str) -> None:
    """A binary file from one node to another through the host, in chunks small enough for one
    command line each."""
    blob = src.run(f"base64 -w0 {path}", check=True, timeout=120).stdout.strip()
    dst.run(f"rm -f {path}.b64", check=True)
    for i in range(0, len(blob), CHUNK):
        dst.run(f"printf %s {blob[i:i + CHUNK]} >> {path}.b64", check=True)
    dst.run(f"base64 -d {path}.b64 > {path} && rm -f {path}.b64", check=True)
    want = src.run(f"sha256sum {path}", check=True).stdout.split()[0]
    seen = dst.run(f"sha256sum {path}", check=True).stdout.split()[0]
    if want != seen:
        raise StageFailed(f"copying {path} from {src.name} to {dst.name}: sha256 {seen}, expected {want}")


def v3_snapshots(version: str) -> bool:
    # From 3.4, where etcd's docs back up with `etcdctl snapshot save` (v3 is the default API).
    return versions.parse(version)[:2] >= (3, 4)


def _snapshot_tool(node: Node) -> str:
    # etcdutl does the offline restore from 3.5 (etcdctl's restore is deprecated there)
    return "etcdutl" if node.run("command -v etcdutl").ok else "ETCDCTL_API=3 etcdctl"


def restore(cfg: ClusterConfig, nodes: list[Node], say: Callable[[str], None] = print) -> DrillResult:
    """Back up (v2 keys and folders; a v3 snapshot from 3.4), break the cluster (both members
    stopped, data removed), make it again (from the snapshot where there is one), write the v2
    keys back, restart calico-node, and show Calico and Docker work with 0 keys lost."""
    result = DrillResult("restore")
    began = time.monotonic()
    first = nodes[0]
    ip = cfg.node(first.name).ip
    v3 = v3_snapshots(cfg.versions.etcd)
    watched = _Watched(cfg, nodes, "drill-restore")
    try:
        # No client history here: a restore goes back to the backup, so writes after it are lost by design.
        watched.start(record=False)
        backup = v2_backup(first, ip)
        result.checks.append(Check("v2 backup holds the keyspace", str(len(watched.before)), str(len(backup.keys))))
        if v3:
            res = etcd_query.etcdctl(first, f"snapshot save {SNAPSHOT}", cfg.versions.etcd,
                                     f"{cfg.etcd_scheme}://{ip}:2379", timeout=120, v3=True)
            if not res.ok:
                raise StageFailed(f"{first.name}: etcdctl snapshot save failed: {res.describe()}")
            for other in nodes[1:]:
                copy_file(first, other, SNAPSHOT)
        say(f"    restore: v2 backup of {len(backup.keys)} keys and {len(backup.dirs)} empty folders"
            + (", a v3 snapshot" if v3 else "") + "; calico-node and etcd stopped, etcd's data removed")
        # calico-node first: Felix and confd would act on the empty keyspace of the rebuilt cluster
        # (remove the workloads' endpoints, drop the BGP peers). Stopped, it kills its processes
        # and leaves the data path as it is (routes kept, rules in place) until it starts again.
        for n in nodes:
            n.run("systemctl stop calico-node", check=True, timeout=120)
        for n in nodes:
            etcd_stop.stop(n)  # after the bound a hung member is ended (the restore empties it anyway)
        owner = first.run(f"stat -c %U:%G {etcd_section.DATA_DIR}").stdout.strip() or "etcd:etcd"
        for n in nodes:
            n.run(f"rm -rf {etcd_section.DATA_DIR}", check=True)
        if v3:
            for n in nodes:
                spec = cfg.node(n.name)
                n.run(f"{_snapshot_tool(n)} snapshot restore {SNAPSHOT} --name {spec.name} "
                      f"--initial-cluster {cfg.initial_cluster} --initial-advertise-peer-urls http://{spec.ip}:2380 "
                      f"--data-dir {etcd_section.DATA_DIR}", check=True, timeout=120)
        for n in nodes:
            n.run(f"mkdir -p {etcd_section.DATA_DIR} && chown -R {owner} {etcd_section.DATA_DIR} && "
                  f"chmod 700 {etcd_section.DATA_DIR}", check=True)
        # Both at once: one member alone waits for its quorum (provision/etcd.py's start_together).
        for n in nodes:
            n.run("systemctl start --no-block etcd", check=True)
        try:
            wait_for(lambda: _healthy(cfg, nodes), bool, "the rebuilt etcd cluster healthy", timeout=GATE_DEADLINE)
        except Timeout:
            raise StageFailed(f"the rebuilt etcd cluster was not healthy within {GATE_DEADLINE} s; see "
                              "`journalctl -u etcd`") from None
        empty = keyspace.snapshot(first, ip)
        result.checks.append(Check("v2 keys in the rebuilt cluster before they are written back "
                                   + ("(a v3 snapshot does not carry the v2 store)" if v3 else "(it is empty)"),
                                   "0", str(len(empty))))
        v2_restore(first, ip, backup)
        say("    restore: v2 keys written back; calico-node started on every node")
        upgrader = Upgrader(cfg, nodes, say)
        # BIRD at debug from its start (confd renders the key before BIRD runs), the logs marked
        # here (host-mounted: kept across the stop), every drop classified from both of them.
        bgp = bgp_watch.BgpWatch(cfg, nodes)
        bgp.start(wait=False)
        try:
            for n in nodes:
                n.run("systemctl start calico-node", check=True, timeout=120)
            upgrader.bgp_gate()
            drops = bgp.read()
        finally:
            bgp.restore()
        result.bgp_drops = [d.to_json() for d in drops]
        result.sessions_dropped = [d.describe() for d in drops if d.collision]
        result.checks.append(Check("BGP mesh after the restore", "Established on every node",
                                   "Established on every node" if all(upgrader.mesh_established(n) for n in nodes)
                                   else "not Established everywhere"))
        watched.finish(result, cfg)
        result.versions = member_versions(cfg, nodes)
    finally:
        for n in nodes:
            n.run(f"rm -f {SNAPSHOT} {SNAPSHOT}.b64")
            n.run("systemctl start --no-block etcd calico-node")  # after a failure: running again, if it can
        watched.remove()
        result.seconds = round(time.monotonic() - began, 1)
    return result


def append_report(cfg: ClusterConfig, result: DrillResult) -> None:
    """reports/drills.json: every drill of the run, in order."""
    path = cfg.reports_path / "drills.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(done + [result.to_json()], indent=2) + "\n")

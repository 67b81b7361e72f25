"""Failure artifacts: when a test or a stage fails, gather what a person would look at first
from every node (journals, etcd's view, BGP, addresses, routes, firewall, Docker, calico-node's
logs) into reports_dir/artifacts/<test or stage>/<node>/, and link the files from JUnit with
`[[ATTACHMENT|<abs path>]]` lines (Jenkins' junit-attachments and GitLab read those).

Everything is best effort: each command has a timeout, a node that does not answer over SSH is
noted once and skipped, and a per-node deadline bounds the whole collection, so a dead node
never hangs the run that is already failing.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from calicolab.core import config, node_commands, nodes, shell
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.core.remote import CommandResult, Node, SshTarget
from calicolab.report import leak_scan
from calicolab.stack import etcd_query

COMMAND_TIMEOUT = 10.0   # one command on a node
NODE_DEADLINE = 90.0     # all commands on one node
SSH_CONNECT_TIMEOUT = 5  # a dead node is given up quickly; the failure is already known
PROBES_AT_ONCE = 4       # SSH channels at a time on one node's connection
BIRD_SOCKET = "/var/run/calico/bird.ctl"
JOURNAL_LINES = 400
V3_ETCDCTL = "3.5.0"  # any version whose etcdctl speaks the v3 API (for `endpoint status`)


class RemoteNode(Protocol):
    name: str

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120) -> CommandResult: ...


@dataclass(frozen=True)
class Probe:
    """One thing to collect from a node: the file it goes to and how to get it."""
    file: str
    shown: str  # the command as written into the file's first line
    fetch: Callable[[RemoteNode], CommandResult]


@dataclass
class Collection:
    label: str
    folder: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. a node that was unreachable

    def attachment_lines(self) -> list[str]:
        return [attachment_line(p) for p in self.files]


def attachment_line(path: Path) -> str:
    return f"[[ATTACHMENT|{path.resolve()}]]"


def safe_label(label: str) -> str:
    """A folder name from a pytest node id or a stage name."""
    text = label.removeprefix("e2e/").replace("/", ".").replace("::", ".").replace("[", "-").replace("]", "")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:150] or "unnamed"


def _shell_probe(file: str, cmd: str, timeout: float = COMMAND_TIMEOUT) -> Probe:
    # `timeout` on the node too: Fabric's timeout stops waiting, this stops the command.
    wrapped = f"timeout -k 2 {int(timeout)} sh -c {shlex.quote(cmd)}"
    return Probe(file, cmd, lambda node: node.run(wrapped, timeout=timeout + 5))


def _etcd_probe(file: str, args: str, version: str, endpoints: str) -> Probe:
    api = "2" if etcd_query.uses_v2_etcdctl(version) else "3"
    return Probe(file, f"ETCDCTL_API={api} etcdctl --endpoints {endpoints} {args}",
                 lambda node: etcd_query.etcdctl(node, args, version, endpoints,  # type: ignore[arg-type]
                                                 timeout=COMMAND_TIMEOUT))


def node_probes(cfg: ClusterConfig) -> list[Probe]:
    version, endpoints = cfg.versions.etcd, cfg.etcd_endpoints
    v2 = etcd_query.uses_v2_etcdctl(version)
    probes = [_shell_probe(f"journal-{unit}.txt", f"journalctl -u {unit} --no-pager -o short-iso -n {JOURNAL_LINES}")
              for unit in ("etcd", "docker", "calico-node")]
    probes += [
        _shell_probe("units.txt", "systemctl --no-pager --full status etcd docker calico-node"),
        _etcd_probe("etcd-member-list.txt", "member list" if v2 else "member list -w table", version, endpoints),
        _etcd_probe("etcd-health.txt", "cluster-health" if v2 else "endpoint health", version, endpoints),
        # The v2 etcdctl has no status; the v3 API answers it from etcd 3.0 on.
        _etcd_probe("etcd-status.txt", "endpoint status -w table", V3_ETCDCTL, endpoints),
        _shell_probe("calicoctl-node-status.txt", node_commands.calicoctl("node status")),
        _shell_probe("bird-protocols.txt",
                     f"docker exec calico-node sh -c 'birdcl -s {BIRD_SOCKET} show protocols all "
                     f"|| birdc -s {BIRD_SOCKET} show protocols all'"),
        _shell_probe("ip-addr.txt", "ip addr"),
        _shell_probe("ip-route.txt", "ip route show table all"),
        # Whether the private network itself carries: a peer that answers no ARP is "no route to
        # host" for etcd and BIRD alike (the Debian VM lane lost it once mid-run).
        _shell_probe("peers.txt", "ip neigh show; " + "; ".join(
            f"ping -c 1 -W 2 {n.ip} >/dev/null 2>&1 && echo '{n.ip} ({n.name}) answers ping' "
            f"|| echo '{n.ip} ({n.name}) does not answer ping'" for n in cfg.nodes)),
        _shell_probe("iptables-save.txt", "iptables-save"),
        _shell_probe("docker-info.txt", "docker info"),
        _shell_probe("docker-ps.txt", "docker ps -a --no-trunc"),
        _shell_probe("calico-node-logs.txt", "docker logs --timestamps --tail 500 calico-node"),
        # calico/node's services log through svlogd, not to `docker logs`.
        _shell_probe("calico-service-logs.txt", "for f in /var/log/calico/*/current; do [ -e \"$f\" ] || continue; "
                     "echo \"== $f\"; tail -n 300 \"$f\"; done"),
    ]
    return probes


HostRun = Callable[[list[str], float], tuple[int, str, str]]


def _host_run(cmd: list[str], timeout: float) -> tuple[int, str, str]:
    try:
        out = shell.run(cmd, check=False, timeout=timeout)
    except UserError as err:  # not installed, or timed out
        return 127, "", str(err)
    return out.rc, out.stdout, out.stderr


def host_probes(cfg: ClusterConfig, node_name: str) -> list[tuple[str, list[str]]]:
    """Seen from the host, so there is something even when SSH is dead: the lab's containers;
    for libvirt, the bridges the guests' interfaces hang on and the host's FORWARD chain, which
    bridged guest traffic crosses where br_netfilter is loaded (Docker loads it) and Docker sets
    its policy to DROP."""
    if cfg.provider == "libvirt":
        return [("host-bridges.txt", ["bridge", "link", "show"]),
                ("host-forward.txt", ["iptables", "-w", "-n", "-v", "-L", "FORWARD"])]
    if not cfg.is_lab:
        return []
    container = f"{cfg.prefix}-{node_name}"  # the Vagrantfile's docker provider name
    return [("host-container-state.txt", ["docker", "inspect", "--format", "{{json .State}}", container]),
            ("host-container-logs.txt", ["docker", "logs", "--timestamps", "--tail", "300", container])]


def _write(path: Path, shown: str, rc: int | str, seconds: float, stdout: str, stderr: str) -> Path:
    body = stdout
    if stderr.strip():
        body += ("\n" if body and not body.endswith("\n") else "") + "--- stderr ---\n" + stderr
    header = f"$ {shown}\n# exit {rc} after {seconds:.1f} s\n"
    path.write_text(leak_scan.redact(header + body))
    return path


def _fetch(probe: Probe, node: RemoteNode) -> tuple[CommandResult | UserError, float]:
    start = time.monotonic()
    try:
        res: CommandResult | UserError = probe.fetch(node)
    except UserError as err:  # the node stopped answering over SSH
        res = err
    except Exception as err:  # best effort: one odd answer must not lose the rest
        res = CommandResult(node.name, probe.shown, -1, "", f"{err.__class__.__name__}: {err}")
    return res, time.monotonic() - start


def collect_node(node: RemoteNode | None, probes: Iterable[Probe], host: list[tuple[str, list[str]]],
                 folder: Path, *, unreachable: str = "", deadline: float = NODE_DEADLINE,
                 host_run: HostRun = _host_run) -> tuple[list[Path], list[str]]:
    """Collect one node's files; returns the files written and notes about what was skipped.

    The first command alone (it opens the SSH connection, or finds the node dead), then the
    rest a few at a time over that connection: a sick node makes several commands wait for
    their timeouts (etcdctl, calicoctl, docker info) and those waits overlap.
    """
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    notes: list[str] = []
    name = folder.name
    end = time.monotonic() + deadline
    for file, cmd in host:
        start = time.monotonic()
        rc, out, err = host_run(cmd, COMMAND_TIMEOUT)
        files.append(_write(folder / file, " ".join(cmd), rc, time.monotonic() - start, out, err))
    dead = unreachable or ("" if node is not None else "no SSH settings for this node")
    todo = list(probes)
    if not dead and todo:
        first, *rest = todo
        res, seconds = _fetch(first, node)  # type: ignore[arg-type]
        results: dict[str, tuple[CommandResult | UserError, float]] = {first.file: (res, seconds)}
        if not isinstance(res, UserError) and rest:
            pool = ThreadPoolExecutor(max_workers=PROBES_AT_ONCE)
            futures = {pool.submit(_fetch, probe, node): probe for probe in rest}
            done, pending = wait(futures, timeout=max(0.0, end - time.monotonic()))
            pool.shutdown(wait=False, cancel_futures=True)  # late ones end at their own timeouts
            results.update((futures[f].file, f.result()) for f in done)
            if pending:
                names = ", ".join(sorted(futures[f].file for f in pending))
                notes.append(f"{name}: stopped after {deadline:.0f} s; not collected: {names}")
        for probe in todo:  # in the probes' order, so the files read like a checklist
            if probe.file not in results:
                continue
            res, seconds = results[probe.file]
            if isinstance(res, UserError):
                dead = dead or str(res)
                continue
            rc: int | str = "124 (timed out)" if res.rc == 124 else res.rc
            missing = res.cannot_run
            if missing:  # a reader must not take an empty file for a component that is down
                rc = f"{res.rc} (the command is missing or cannot run: {missing.command}: {missing.why})"
            files.append(_write(folder / probe.file, probe.shown, rc, seconds, res.stdout, res.stderr))
    if dead:
        notes.append(f"{name}: node commands skipped: {dead}")
        (folder / "unreachable.txt").write_text(leak_scan.redact(dead + "\n"))
        files.append(folder / "unreachable.txt")
    return files, notes


NodeFactory = Callable[[SshTarget, str], RemoteNode]


def _ssh_node(target: SshTarget, ip: str) -> Node:
    return nodes.connect(target, ip, patience=SSH_CONNECT_TIMEOUT)


def collect(cfg: ClusterConfig, label: str, ssh: Mapping[str, Mapping[str, Any]] | None, *,
            node_factory: NodeFactory = _ssh_node, host_run: HostRun = _host_run,
            deadline: float = NODE_DEADLINE) -> Collection:
    """Collect from every node of cfg into reports_dir/artifacts/<label>/<node>/ (in parallel).

    ssh: the run state's SSH settings per node name (state.json "ssh"); missing ones are noted.
    """
    folder = cfg.reports_path / "artifacts" / safe_label(label)
    shutil.rmtree(folder, ignore_errors=True)  # an earlier run's files would mislead
    folder.mkdir(parents=True, exist_ok=True)
    collection = Collection(label, folder)
    probes = node_probes(cfg)
    ssh = ssh or {}

    def one(spec_name: str, ip: str) -> tuple[list[Path], list[str]]:
        node, unreachable = None, ""
        if spec_name in ssh:
            try:
                node = node_factory(SshTarget(**ssh[spec_name]), ip)
            except Exception as err:
                unreachable = f"cannot set up SSH ({err.__class__.__name__}: {err})"
        try:
            return collect_node(node, probes, host_probes(cfg, spec_name), folder / spec_name,
                                unreachable=unreachable, deadline=deadline, host_run=host_run)
        finally:
            close = getattr(node, "close", None)
            if close:
                close()

    with ThreadPoolExecutor(max_workers=max(1, len(cfg.nodes))) as pool:
        futures = [pool.submit(one, n.name, n.ip) for n in cfg.nodes]
        for fut in futures:
            files, notes = fut.result()
            collection.files += files
            collection.notes += notes
    summary = folder / "SUMMARY.txt"
    summary.write_text(f"artifacts for {label}\n" + "".join(f"note: {n}\n" for n in collection.notes)
                       + "".join(f"{p.relative_to(folder)}\n" for p in collection.files))
    collection.files.insert(0, summary)
    return collection


def collect_quietly(cfg: ClusterConfig, label: str, ssh: Mapping[str, Mapping[str, Any]] | None,
                    **kwargs: Any) -> Collection | None:
    """collect(), but a failure to collect never replaces the failure being reported."""
    try:
        return collect(cfg, label, ssh, **kwargs)
    except Exception as err:  # noqa: BLE001 - best effort by design
        print(f"artifacts for {label} not collected: {err.__class__.__name__}: {err}", flush=True)
        return None


# -- the e2e pytest run ------------------------------------------------------------------------
_collected_in_this_process = 0


def on_failed_test(item: Any, report: Any, cluster_json: Path, state_json: Path) -> str | None:
    """Collect for a failing e2e test and put the ATTACHMENT lines into its captured stdout,
    which pytest's JUnit writes as the test case's system-out (junit_logging=system-out). At
    most the run's artifact_limit tests per process are collected (a broken cluster fails every
    check; a dozen snapshots say as much as fifty)."""
    global _collected_in_this_process
    if not cluster_json.exists():
        return None
    try:
        cfg = config.from_effective(cluster_json)
        ssh = json.loads(state_json.read_text()).get("ssh") if state_json.exists() else None
    except (UserError, OSError, ValueError) as err:
        text = f"artifacts: not collected ({err})\n"
    else:
        if _collected_in_this_process >= cfg.artifact_limit:
            text = f"artifacts: not collected (limit of {cfg.artifact_limit} per test process reached)\n"
        else:
            _collected_in_this_process += 1
            got = collect_quietly(cfg, item.nodeid, ssh)
            if got is None:
                return None
            head = [f"artifacts: {got.folder} ({len(got.files)} files)", *got.notes]
            report.sections.append(("Captured stdout artifacts", "\n".join(head) + "\n"))  # the terminal
            text = "".join(f"{line}\n" for line in [*head, *got.attachment_lines()])
            item.add_report_section(report.when, "stdout", text)  # carried into the JUnit system-out
            return text
    report.sections.append(("Captured stdout artifacts", text))
    item.add_report_section(report.when, "stdout", text)
    return text

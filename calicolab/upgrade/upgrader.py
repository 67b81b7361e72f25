"""Rolling upgrades of a running cluster, with a gate after every member.

etcd: one minor version at a time, one member at a time; the v2 API flag is written before a
member crosses into 3.4. Docker: node by node, in the order the stack needs (workloads and
calico-node stopped, Docker upgraded and started with its cluster store, calico-node, then the
workloads). calico-node: a rolling restart onto the image of the target version.
Each hop is timed; the run's configuration follows the cluster's versions as they change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

from calicolab.core import config, node_commands, state, versions
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import StageFailed
from calicolab.core.polling import Timeout, wait_for
from calicolab.core.remote import Node
from calicolab.core.tables import Column, render
from calicolab.measure.step_figures import Hop
from calicolab.stack import etcd_query, etcd_stop, parsers
from calicolab.upgrade import components
from calicolab.upgrade.components import Component
from provision import calico as calico_section
from provision import docker as docker_section
from provision import etcd as etcd_section
from provision import platform
from provision.context import Context

GATE_DEADLINE = 90
STOP_DEADLINE = 120  # beyond systemd's default stop timeout (90 s, then SIGKILL)
NO_SERVICE_STARTS = "/usr/sbin/policy-rc.d"


class Upgrader:
    def __init__(self, cfg: ClusterConfig, nodes: list[Node], say: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.nodes = nodes
        self.say = say
        self.hops: list[Hop] = []
        self._bgp_seconds: float | None = None  # this hop's calico-node (re)start to BGP Established

    # -- bookkeeping -----------------------------------------------------------------
    def _spec(self, node: Node) -> config.Node:
        return self.cfg.node(node.name)

    def _record(self, component: str, version: str) -> None:
        """The run's configuration now describes the upgraded cluster (later tasks read it)."""
        self.cfg = config.with_overrides(self.cfg, versions=replace(self.cfg.versions, **{component: version}))
        extras = state.read(self.cfg).get("effective", {})
        config.write_effective(self.cfg, extras)

    def _hop(self, component: Component, node: Node, before: str, after: str,
             action: Callable[[], str]) -> None:
        self.say(f"    {component.hop} {before} -> {after} on {node.name}")
        hop = Hop(component.hop, node.name, before, after, started=round(time.time(), 3),
                  kind=component.step_kind, restarts_workloads=component.restarts_workloads)
        start = time.monotonic()
        self._bgp_seconds = None
        try:
            hop.gate = action()
        finally:
            hop.seconds = round(time.monotonic() - start, 1)
            hop.ended = round(time.time(), 3)
            hop.bgp_seconds = None if self._bgp_seconds is None else round(self._bgp_seconds, 1)
            self.hops.append(hop)
        self.say(f"      gate passed in {hop.seconds:.1f} s: {hop.gate}")

    def _platform(self, node: Node):
        return platform.detect(node)

    # -- etcd ------------------------------------------------------------------------
    def _rolling(self, component: Component, target: str, per_node: Callable[[Node, str], str],
                 members: dict[str, str] | None = None) -> list[str]:
        """Every version on the path, node by node; the configuration follows each version.
        members: a node's version where it is not the cluster's (its first hop starts there)."""
        name = component.name
        # The compatibility rules first: they say why (e.g. etcd 3.6 has no v2 API).
        config.with_overrides(self.cfg, versions=replace(self.cfg.versions, **{name: target}))
        members = dict(members or {})
        path = versions.upgrade_path(name, getattr(self.cfg.versions, name), target, self.cfg.install_target)
        for version in path:
            before = getattr(self.cfg.versions, name)
            for node in self.nodes:
                self._hop(component, node, members.pop(node.name, before), version,
                          lambda n=node, v=version: per_node(n, v))
            self._record(name, version)
        return path

    def etcd(self, target: str) -> None:
        # A dwell (calicolab/upgrade/drills.py) may have left one member a minor ahead.
        ahead = state.read(self.cfg).get("etcd_members") or {}
        path = self._rolling(components.ETCD, target, self._etcd_member, ahead)
        state.update(self.cfg, etcd_members={})
        if path:
            self._etcd_cluster_gate(path[-1])

    def etcd_member(self, node: Node, before: str, version: str) -> None:
        """One member to `version` (up or, before the cluster version moved, back), gated; the
        cluster's recorded version is left alone: a mixed cluster runs at the lowest one."""
        self._hop(components.ETCD, node, before, version, lambda: self._etcd_member(node, version))

    def _etcd_member(self, node: Node, version: str) -> str:
        cfg_after = replace(self.cfg, versions=replace(self.cfg.versions, etcd=version))
        # Written first: etcd 3.3 reads ETCD_ENABLE_V2 too, and 3.4+ must start with it.
        node.put(etcd_section.render_conf(cfg_after, self._spec(node)), etcd_section.CONF)
        stopped = self._stop_etcd(node, f"to-{version}")
        try:
            self._install(node, "etcd", version)
            node.run("systemctl daemon-reload && systemctl start etcd", check=True, timeout=120)
        except BaseException:
            # Leave the member running (at whatever version is installed), not stopped.
            node.run("systemctl start etcd", timeout=120)
            raise
        return f"{stopped}; " + self._etcd_member_gate(node, version)

    def _stop_etcd(self, node: Node, label: str) -> str:
        """Stop one member within etcd's own shutdown bound; a hang is said, and its journal
        (the goroutine dump) kept in the reports."""
        stopped = etcd_stop.stop(node)
        if not stopped.hung:
            return stopped.summary()
        folder = self.cfg.reports_path / "etcd-stops"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{node.name}-{label}.log"
        path.write_text(stopped.journal)
        self.say(f"      etcd on {node.name} hung while stopping; journal with the goroutine dump: {path}")
        return f"{stopped.summary()}: {path.name}"

    def _etcd_member_gate(self, node: Node, version: str) -> str:
        ip = self._spec(node).ip

        def probe() -> tuple[str, bool, bool]:
            ver = json.loads(node.run(etcd_query.curl_command(ip, "/version", "-sS -m 5")).stdout or "{}")
            healthy = all(json.loads(node.run(etcd_query.curl_command(n.ip, "/health", "-sS -m 5")).stdout or "{}")
                          .get("health") in ("true", True) for n in self.cfg.nodes)
            v2 = node.run(etcd_query.curl_command(ip, "/v2/keys/calico", "-sS -m 5 -f -o /dev/null")).ok
            return ver.get("etcdserver", ""), healthy, v2

        try:
            seen = wait_for(probe, lambda s: s == (version, True, True), f"{node.name}: etcd {version} gate",
                            timeout=GATE_DEADLINE)
        except Timeout as err:
            raise StageFailed(f"{node.name}: etcd {version} did not pass its gate (server version, "
                              f"every member healthy, v2 API): last seen {err.last}; see "
                              "`journalctl -u etcd`") from None
        return f"etcdserver {seen[0]}, all members healthy, v2 API answers"

    def _etcd_cluster_gate(self, version: str) -> None:
        want = ".".join(version.split(".")[:2]) + ".0"
        node = self.nodes[0]
        ip = self._spec(node).ip
        try:
            wait_for(lambda: json.loads(node.run(etcd_query.curl_command(ip, "/version", "-sS -m 5")).stdout or "{}")
                     .get("etcdcluster"), lambda v: v == want, f"etcd cluster version {want}",
                     timeout=GATE_DEADLINE)
        except Timeout as err:
            raise StageFailed(f"the etcd cluster version stayed {err.last} after every member ran "
                              f"{version}: a member still runs the older minor") from None
        self.say(f"    etcd cluster version is now {want}")

    # -- docker ----------------------------------------------------------------------
    def docker(self, target: str) -> None:
        self._rolling(components.DOCKER, target, self._docker_node)

    def _docker_node(self, node: Node, version: str) -> str:
        running = [n for n in node.run("docker ps --format '{{.Names}}'").stdout.split() if n != "calico-node"]
        # busybox's sh ignores SIGTERM as PID 1: a short grace instead of Docker's 10 s.
        if running:
            node.run("docker stop -t 1 " + " ".join(running), check=True, timeout=120)
        node.run("systemctl stop calico-node docker docker.socket", check=True, timeout=120)
        self._install(node, "docker", version)
        node.run("systemctl start docker", check=True, timeout=120)
        want = docker_section.cluster_store(self._spec(node))
        try:
            wait_for(lambda: parsers.docker_info_cluster_store(node.run("docker info").stdout),
                     lambda s: s == want, f"{node.name}: docker cluster store", timeout=GATE_DEADLINE)
        except Timeout as err:
            raise StageFailed(f"{node.name}: Docker {version} did not come back with its cluster store "
                              f"(last seen {err.last}); see `journalctl -u docker`") from None
        self._restart_calico_node(node, start_only=True)
        if running:
            node.run("docker start " + " ".join(running), check=True, timeout=120)
        return f"dockerd {version}, cluster store {want}, calico-node back, {len(running)} workload(s) restarted"

    # -- calico-node -----------------------------------------------------------------
    def calico(self, target: str) -> None:
        config.with_overrides(self.cfg, versions=replace(self.cfg.versions, calico=target))
        before = self.cfg.versions.calico
        for node in self.nodes:
            self._hop(components.CALICO, node, before, target,
                      lambda n=node: self._calico_node(n, target))
        self._record(components.CALICO.name, target)

    def _calico_node(self, node: Node, target: str) -> str:
        run = state.read(self.cfg)
        facts = run.get("facts") or {"calico_source": run.get("calico_source", "double")}
        cfg_after = replace(self.cfg, versions=replace(self.cfg.versions, calico=target))
        ctx = Context(cfg_after, node, self._spec(node), self._platform(node), section=calico_section.SECTION,
                      facts=facts)
        calico_section.image(ctx)
        calico_section.unit(ctx)  # the unit names the image: rewritten when the tag changes
        return self._restart_calico_node(node, start_only=False)

    def _restart_calico_node(self, node: Node, start_only: bool) -> str:
        started_before = node.run("docker inspect -f '{{.State.StartedAt}}' calico-node").stdout.strip()
        restarted = time.monotonic()
        node.run("systemctl start calico-node" if start_only else "systemctl restart calico-node",
                 check=True, timeout=120)
        try:
            wait_for(lambda: (node.run("docker inspect -f '{{.State.StartedAt}}' calico-node").stdout.strip(),
                              node.run("docker logs calico-node 2>&1").stdout),
                     lambda s: s[0] not in ("", started_before) and calico_section.STARTED in s[1],
                     f"{node.name}: calico-node restarted", timeout=GATE_DEADLINE)
        except Timeout:
            raise StageFailed(f"{node.name}: calico-node did not log '{calico_section.STARTED}' after "
                              "the restart; see `docker logs calico-node`") from None
        seconds = self.bgp_gate()
        self._bgp_seconds = time.monotonic() - restarted
        return f"calico-node started, BGP Established on every node after {seconds:.1f} s"

    def mesh_established(self, node: Node) -> bool:
        res = node.run(node_commands.calicoctl("node status"))  # by path: CentOS 7's sudo secure_path
        if res.cannot_run:  # not "BGP did not re-establish": waiting will not install calicoctl
            raise StageFailed(res.missing_text())
        status = parsers.calicoctl_node_status(res.stdout)
        return parsers.mesh_established(status, [p.ip for p in self.cfg.peers_of(node.name)])

    def bgp_gate(self) -> float:
        start = time.monotonic()

        def all_established() -> dict[str, bool]:
            return {n.name: self.mesh_established(n) for n in self.nodes}

        try:
            wait_for(all_established, lambda s: all(s.values()), "BGP mesh Established", timeout=GATE_DEADLINE)
        except Timeout as err:
            raise StageFailed(f"BGP did not re-establish within {GATE_DEADLINE} s (per node: {err.last}); "
                              "see `calicoctl node status`") from None
        return time.monotonic() - start

    # -- packages --------------------------------------------------------------------
    def _install(self, node: Node, component: str, version: str) -> None:
        """Install without letting the package start the service: the hop starts it in order."""
        node.put("#!/bin/sh\nexit 101\n", NO_SERVICE_STARTS, mode="0755")
        try:
            # The install target, not the provider: a Debian VM installs from Debian's archive.
            self._platform(node).install(node, component, version, self.cfg.install_target,
                                         self.cfg.upstream.download_base,
                                         self.cfg.upstream.proxy_env(self.cfg.nodes))
        finally:
            node.run(f"rm -f {NO_SERVICE_STARTS}")

    def table(self) -> str:
        # e2e/upgrade reads this back: header and rule first, then one hop a line, "to" 4th.
        return render(("component", "node", "from", "to", Column("seconds", align="right")),
                      [(h.component, h.node, h.before, h.after, f"{h.seconds:.1f}") for h in self.hops])




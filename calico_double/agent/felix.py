"""Felix of the Calico double: enforces Calico 2.6's model on the host, from etcd.

Run as a process of its own (`python3 -m calico_double.agent.felix`, environment as calico/node's)
like calico/node's runit service `felix`. As felix 2.6.0 (projectcalico/felix@2.6.0 felix.go,
intdataplane/int_dataplane.go): wait for /calico/v1/Ready, load config (global, then per host,
then FELIX_* environment), refuse loose RPF, set conf/default/rp_filter=1, then keep iptables,
IP sets, routes, ARP entries and interface sysctls in step with etcd. On SIGTERM it exits and
leaves the dataplane as it is, as real felix does.

The model -> rules/commands part is pure (felix_model, felix_rules, felix_dataplane planning);
this module is the process around it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config, ConfigError
from .etcd import EtcdClient, EtcdError
from .felix_dataplane import Dataplane, DataplaneError, Link
from .felix_model import ROOT, Model, model_from_kvs
from .netdev import CommandError, NetDev, run
from .runsv import set_process_name

log = logging.getLogger("felix")

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]

# int_dataplane.go configureKernel, word for word.
LOOSE_RPF_MESSAGE = (
    "Kernel's RPF check is set to 'loose'.  This would allow endpoints to spoof their IP address.  "
    "Calico requires net.ipv4.conf.all.rp_filter to be set to 0 or 1. If you require loose RPF and you "
    "are not concerned about spoofing, this check can be disabled by setting the IgnoreLooseRPF "
    "configuration parameter to 'true'."
)
RETRY_SECONDS = 1.0


def count_rules(save_output: str) -> int:
    return sum(1 for line in save_output.splitlines() if line.startswith("-A "))


def choose_iptables(runner: Runner = run) -> str:
    """Use the iptables backend the host already uses (the one holding more rules).

    The image has both; writing nft rules on a host whose Docker uses legacy iptables
    (CentOS 7) or the reverse would put our rules in a table the kernel path ignores.
    """
    counts = {}
    for variant in ("legacy", "nft"):
        try:
            result = runner([f"iptables-{variant}-save"])
        except FileNotFoundError:
            continue
        if result.returncode == 0:
            counts[variant] = count_rules(result.stdout or "")
    if not counts:
        return "iptables"
    if counts.get("legacy", -1) > counts.get("nft", -1):
        return "iptables-legacy"
    return "iptables-nft" if "nft" in counts else "iptables-legacy"


def felix_hostname(env: Mapping[str, str]) -> str:
    """calico/node's felix run script exports FELIX_FELIXHOSTNAME=$NODENAME; felix falls back to
    os.Hostname() (config_params.go). HOSTNAME is libnetwork's, not felix's."""
    for name in ("NODENAME", "FELIX_FELIXHOSTNAME"):
        value = env.get(name, "").strip()
        if value:
            return value
    return socket.gethostname()


def rp_filter_is_loose(proc_sys: Path) -> bool:
    """int_dataplane.go readRPFilter: net.ipv4.conf.all.rp_filter > 1 is 'loose'."""
    return int((proc_sys / "net/ipv4/conf/all/rp_filter").read_text().strip()) > 1


@dataclass
class Timers:
    """When the periodic resyncs are due (upstream: iptables and routes 90 s, IP sets 10 s)."""

    next_iptables: float = 0.0
    next_routes: float = 0.0
    next_ipsets: float = 0.0
    next_retry: float | None = None


@dataclass
class FelixDaemon:
    etcd: EtcdClient
    hostname: str
    env: Mapping[str, str] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    runner: Runner = run
    proc_sys: Path = Path("/proc/sys")
    poll_interval: float = 1.0
    iptables: str = ""
    clock: Callable[[], float] = time.monotonic

    def load_config(self) -> tuple[Model, int] | None:
        """Wait for the Ready flag as felix's loadConfigFromDatastore does; None when stopped."""
        next_report = 0.0
        log.info("Waiting for the datastore to be ready")
        while not self.stop.is_set():
            try:
                kvs, index = self.etcd.snapshot(ROOT)
                model = model_from_kvs(kvs, self.hostname, self.env)
                if model.ready:
                    log.info("Loaded config from datastore; hostname=%s", self.hostname)
                    return model, index
                if self.clock() >= next_report:
                    if any(k == f"{ROOT}/Ready" for k, _ in kvs):
                        log.warning("Global datastore 'Ready' flag set to false, waiting...")
                    else:
                        log.error("Failed to read global datastore 'Ready' flag, will retry...: "
                                  "%s/Ready does not exist", ROOT)
                    next_report = self.clock() + 10
            except EtcdError as exc:
                if self.clock() >= next_report:
                    log.error("Failed to read global datastore 'Ready' flag, will retry...: %s", exc)
                    next_report = self.clock() + 10
            self.stop.wait(RETRY_SECONDS)
        return None

    def configure_kernel(self, model: Model) -> bool:
        try:
            loose = rp_filter_is_loose(self.proc_sys)
        except (OSError, ValueError) as exc:
            if model.settings.ignore_loose_rpf:
                log.error("Failed to read kernel's rp_filter value from /proc/sys. "
                          "Ignoring due to IgnoreLooseRPF setting. (%s)", exc)
                loose = False
            else:
                log.critical("Failed to read kernel's rp_filter value from /proc/sys: %s", exc)
                return False
        if loose:
            if not model.settings.ignore_loose_rpf:
                log.critical(LOOSE_RPF_MESSAGE)
                return False
            log.warning("Kernel's RPF check is set to 'loose' and IgnoreLooseRPF set to true.  Calico "
                        "will not be able to prevent workloads from spoofing their source IP.")
        # New interfaces start strict, so there is no window before felix configures them.
        NetDev(proc_sys=self.proc_sys).write_sysctl("net/ipv4/conf/default/rp_filter", "1")
        return True

    def run(self) -> int:
        log.info("Felix starting up (Calico double, as felix 2.6.0) on host %s", self.hostname)
        hostname_env = self.env.get("HOSTNAME", "").strip()
        if hostname_env and hostname_env != self.hostname:
            # As with real felix: libnetwork files endpoints under HOSTNAME, felix reads its own name.
            log.warning("HOSTNAME=%s differs from felix's hostname %s: endpoints the Docker plugin "
                        "stores under %s are not this felix's", hostname_env, self.hostname, hostname_env)
        loaded = self.load_config()
        if loaded is None:
            return 0
        model, index = loaded
        try:
            if not self.configure_kernel(model):
                return 1
        except CommandError as exc:
            log.critical("Cannot configure the kernel: %s", exc)
            return 1
        if not self.iptables:
            self.iptables = choose_iptables(self.runner)
        log.info("Using %s (the backend the host's rules are in)", self.iptables)
        dataplane = Dataplane(self.iptables, proc_sys=self.proc_sys, clock=self.clock)
        self.loop(dataplane, model, index)
        log.info("Felix exiting; the dataplane is left as programmed")
        return 0

    def loop(self, dataplane: Dataplane, model: Model, index: int) -> None:
        timers = Timers()
        applied: Model | None = None
        applied_links: dict[str, Link] | None = None
        etcd_ok = True
        while not self.stop.is_set():
            now = self.clock()
            try:
                links = dataplane.links(model.settings.interface_prefixes)
            except DataplaneError as exc:
                log.warning("Cannot list interfaces (will retry): %s", exc)
                links = applied_links or {}
            due = (model != applied or links != applied_links or now >= min(timers.next_iptables, timers.next_routes)
                   or (timers.next_retry is not None and now >= timers.next_retry))
            if due:
                self.apply(dataplane, model, links, timers)
                applied, applied_links = model, links
            elif now >= timers.next_ipsets:
                # Only the IP sets are due (every 10 s against iptables' and routes' 90 s): felix
                # resyncs them alone. A whole pass each time cost a TCG guest a tenth of its CPU.
                self.apply(dataplane, model, links, timers, ipsets_only=True)
            # Wait for etcd to change (at most poll_interval, so new veths are seen quickly).
            try:
                changed = self.etcd.wait_for_change(ROOT, index, self.poll_interval)
                if changed is not None:
                    kvs, index = self.etcd.snapshot(ROOT)
                    model = model_from_kvs(kvs, self.hostname, self.env)
                if not etcd_ok:
                    log.info("etcd is reachable again; resynchronising")
                    kvs, index = self.etcd.snapshot(ROOT)
                    model = model_from_kvs(kvs, self.hostname, self.env)
                    etcd_ok = True
            except EtcdError as exc:
                if etcd_ok:
                    log.warning("Lost the datastore (keeping the dataplane as it is, will retry): %s", exc)
                etcd_ok = False
                try:
                    kvs, index = self.etcd.snapshot(ROOT)
                    model = model_from_kvs(kvs, self.hostname, self.env)
                    etcd_ok = True
                    log.info("Resynchronised with the datastore")
                except EtcdError:
                    self.stop.wait(RETRY_SECONDS)

    def apply(self, dataplane: Dataplane, model: Model, links: dict[str, Link], timers: Timers,
              ipsets_only: bool = False) -> None:
        start = self.clock()
        s = model.settings
        try:
            result = dataplane.apply(model, links, ipsets_only=ipsets_only)
        except (DataplaneError, CommandError, OSError) as exc:
            log.error("Failed to apply dataplane updates (will retry): %s", exc)
            timers.next_retry = start + RETRY_SECONDS
            return
        timers.next_ipsets = start + (s.ipsets_refresh_interval or float("inf"))
        if ipsets_only:
            if result.changed:
                log.info("Resynchronised IP sets in %.0f ms", (self.clock() - start) * 1000)
            return
        timers.next_iptables = start + (s.iptables_refresh_interval or float("inf"))
        timers.next_routes = start + (s.route_refresh_interval or float("inf"))
        timers.next_retry = None if result.ok else start + RETRY_SECONDS
        if result.grace:
            timers.next_routes = min(timers.next_routes, start + 2.0)
        if result.changed:
            log.info("Applied dataplane updates in %.0f ms: %s (%d local endpoint(s))",
                     (self.clock() - start) * 1000, ", ".join(result.changed), len(model.local_endpoints()))


def setup_logging() -> None:
    # felix logs to the screen; the supervisor keeps it in /var/log/calico/felix/current.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s][%(process)d] %(module)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def main(env: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("Received %s; exiting without touching the dataplane", signal.Signals(signum).name)
        stop.set()

    # The handlers before the name: whoever sees calico-felix may stop it at once (CI: a SIGTERM
    # sent as soon as /proc/<pid>/comm said calico-felix, before the handlers, killed it: -15).
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    set_process_name("calico-felix")
    setup_logging()
    try:
        cfg = Config.from_env(env)
        etcd = EtcdClient.for_config(cfg)
    except (ConfigError, EtcdError, ValueError) as exc:
        log.critical("Felix cannot start: %s", exc)
        return 1
    felix = FelixDaemon(etcd, felix_hostname(env), env, stop,
                  poll_interval=float(env.get("CALICO_DOUBLE_FELIX_POLL", "") or 1.0))
    return felix.run()


if __name__ == "__main__":
    sys.exit(main())

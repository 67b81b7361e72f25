"""Start-up and main loop of the calico-node double.

Order as calico/node 2.6: wait for etcd, register the node, start the dataplane pieces
(felix stand-in, BIRD), serve the libnetwork plugins, then keep BIRD's configuration in
step with etcd until `docker stop` sends SIGTERM.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from . import CALICO_VERSION
from .bird_config import gather_inputs, render_all, write_config
from .bird_daemon import BirdControl, BirdError, BirdSupervisor
from .config import Config, ConfigError
from .etcd import EtcdClient, EtcdError
from .felix import Felix
from .ipam import Ipam
from .ipam_driver import IpamDriver
from .netdev import CommandError, NetDev
from .network_driver import NetworkDriver
from .plugin_server import PluginServer
from .registration import (
    NodeConflict,
    Registration,
    ensure_cluster_config,
    ensure_default_pool,
    register_node,
    stored_ipv4,
)

log = logging.getLogger("calico-node")

IPTABLES_RECHECK_SECONDS = 10.0


def setup_logging(log_dir: Path) -> None:
    fmt = logging.Formatter("%(asctime)s [%(levelname)s][%(process)d] %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(fmt)
    root.addHandler(stream)
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_dir / "calico-node.log")
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
    except OSError as exc:
        root.warning("Not logging to %s: %s", log_dir, exc)


def set_process_name(name: str) -> None:
    """Name the process like felix: calicoctl (the real one too) looks for `calico-felix`."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(15, ctypes.c_char_p(name.encode()), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def resolve_ip(cfg: Config, etcd: EtcdClient, netdev: NetDev) -> IPv4Interface:
    """IP env wins; else the address stored by an earlier start; else autodetect (first-found)."""
    text = cfg.ip
    if text and text.lower() != "autodetect":
        ip = IPv4Address(text)
        found = netdev.interface_for(ip)
        if found is None:
            log.warning("IP %s from the environment is not configured on any interface of this host", ip)
            return IPv4Interface(f"{ip}/32")
        log.info("Using IPv4 address from environment: IP=%s", found)
        return found
    if text is None:
        stored = stored_ipv4(etcd, cfg.nodename)
        if stored:
            found = netdev.interface_for(IPv4Address(stored))
            if found is not None:
                log.info("Using stored IPv4 address %s", found)
                return found
    iface, addr = netdev.autodetect_ipv4()
    log.info("Using autodetected IPv4 address on interface %s: %s", iface, addr)
    return addr


class Agent:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stop_event = threading.Event()
        self.etcd = EtcdClient(cfg.etcd_endpoints, cfg.etcd_ca_file, cfg.etcd_cert_file, cfg.etcd_key_file)
        self.netdev = NetDev()
        self.ipam = Ipam(self.etcd, cfg.nodename)
        self.felix = Felix(self.netdev)
        self.bird_control = BirdControl(cfg.bird_socket)
        self.bird: BirdSupervisor | None = None
        self.servers: list[PluginServer] = []
        self.router_id: IPv4Address | None = None

    def start(self) -> None:
        cfg = self.cfg
        log.info("Calico double %s (stand-in for calico/node) starting on node %s", CALICO_VERSION, cfg.nodename)
        version = self.etcd.wait_until_ready(cfg.etcd_wait_timeout)
        log.info("Connected to etcd %s (%s)", ", ".join(cfg.etcd_endpoints), version.get("etcdserver", "?"))
        ensure_cluster_config(self.etcd)
        addr = resolve_ip(cfg, self.etcd, self.netdev)
        if cfg.ip6:
            log.warning("IP6=%s is stored but IPv6 networking is not implemented by the Calico double", cfg.ip6)
        register_node(self.etcd, Registration(cfg.nodename, addr, cfg.ip6, cfg.as_num))
        self.router_id = addr.ip
        ensure_default_pool(self.etcd, cfg.no_default_pools)
        self.ipam.reconcile_affinities()
        self.felix.start()
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.backend == "bird":
            self.sync_bird_config()
            self.bird = BirdSupervisor(cfg.bird_config_dir / "bird.cfg", cfg.bird_socket)
            self.bird.start()
            if not self.bird.wait_ready(self.bird_control, 15):
                raise RuntimeError(f"BIRD did not open its control socket {cfg.bird_socket} within 15s")
            log.info("BIRD is running (control socket %s)", cfg.bird_socket)
        else:
            log.info("CALICO_NETWORKING_BACKEND=none: not starting BIRD")
        if cfg.libnetwork_enabled:
            mtu_text = os.environ.get("CALICO_LIBNETWORK_VETH_MTU", "").strip()
            network = NetworkDriver(self.etcd, cfg.nodename, self.netdev, int(mtu_text) if mtu_text else None)
            self.servers = [
                PluginServer(cfg.plugin_dir / "calico.sock", network.routes(), "calico"),
                PluginServer(cfg.plugin_dir / "calico-ipam.sock", IpamDriver(self.ipam).routes(), "calico-ipam"),
            ]
            for server in self.servers:
                server.start()
            log.info("Starting libnetwork service")
        else:
            log.info("CALICO_LIBNETWORK_ENABLED is not true: not serving the Docker plugins")
        log.info("Calico node started successfully")

    def sync_bird_config(self) -> bool:
        assert self.router_id is not None
        inputs = gather_inputs(self.etcd, self.cfg.nodename, self.router_id)
        changed = write_config(render_all(inputs, self.cfg.bird_config_dir), self.cfg.bird_config_dir)
        if changed:
            log.info("BIRD config rendered: %d mesh peer(s) %s, own blocks %s", len(inputs.peers),
                     [str(p.ip) for p in inputs.peers], [str(b) for b in inputs.own_blocks] or "none")
        return changed

    def loop(self) -> None:
        next_iptables = time.monotonic() + IPTABLES_RECHECK_SECONDS
        while not self.stop_event.wait(self.cfg.poll_interval):
            try:
                if self.bird is not None and self.sync_bird_config():
                    reply = self.bird_control.configure()
                    log.info("BIRD reconfigured: %s", " ".join(reply.lines).strip())
            except (EtcdError, BirdError, OSError) as exc:
                log.warning("BIRD config sync failed (will retry): %s", exc)
            if time.monotonic() >= next_iptables:
                next_iptables = time.monotonic() + IPTABLES_RECHECK_SECONDS
                try:
                    self.felix.ensure_forward_rules()
                except CommandError as exc:
                    log.warning("FORWARD rule check failed: %s", exc)

    def shutdown(self) -> None:
        log.info("Shutting down: removing plugin sockets, stopping BIRD (routes persist)")
        for server in self.servers:
            server.stop()
        if self.bird is not None:
            self.bird.stop()


def main() -> int:
    try:
        cfg = Config.from_env(os.environ)
    except ConfigError as exc:
        print(f"calico-node double: {exc}", file=sys.stderr)
        return 1
    setup_logging(cfg.log_dir)
    set_process_name("calico-felix")
    try:
        agent = Agent(cfg)
    except EtcdError as exc:  # unusable TLS files: say so and exit, as calico/node does
        log.error("Calico node failed to start: %s", exc)
        return 1

    def on_signal(signum: int, _frame: object) -> None:
        log.info("Received %s", signal.Signals(signum).name)
        agent.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        agent.start()
        agent.loop()
    except NodeConflict as exc:
        log.error("%s Terminating.", exc)
        agent.shutdown()
        return 1
    except (EtcdError, CommandError, RuntimeError, ValueError) as exc:
        log.error("Calico node failed to start: %s", exc)
        agent.shutdown()
        return 1
    agent.shutdown()
    return 0

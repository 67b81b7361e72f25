"""Checks before a stage starts, each failing with one line: what is wrong, what to do."""

from __future__ import annotations

import ipaddress
import tempfile

from calicolab.core import shell
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.infra import vm_preflight
from calicolab.infra.vagrant_env import vagrant_network_name
from calicolab.stack import downloads, parsers, upstream


def check_run_dir(cfg: ClusterConfig) -> None:
    for folder in (cfg.run_path, cfg.reports_path):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder):
                pass
        except OSError as err:
            raise UserError(f"{folder} cannot be written ({err.strerror}): choose another folder "
                            "with --run-dir/--reports-dir or CALICOLAB_RUN_DIR") from None


def check_docker_engine() -> None:
    shell.require("docker", "run `invoke setup` to install and start the Docker engine")
    out = shell.run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False, timeout=30)
    if not out.ok or not out.stdout.strip():
        raise UserError("the Docker engine is not running: run `invoke setup` "
                        "(or start dockerd) and try again")


def check_lab_tools() -> None:
    check_docker_engine()
    shell.require("vagrant", "run `invoke setup` (apt-get install vagrant)")
    shell.require("packer", "run `invoke setup` (apt-get install packer)")


def host_networks() -> list[parsers.HostAddress]:
    out = shell.run(["ip", "-j", "addr"], check=False)
    return parsers.ip_json_addresses(out.stdout if out.ok else "[]")


def subnet_conflict(cfg: ClusterConfig, addresses: list[parsers.HostAddress],
                    own: set[str] = frozenset()) -> str | None:
    subnet = ipaddress.IPv4Network(cfg.subnet)
    for addr in addresses:
        if addr.ifname not in own and addr.network.overlaps(subnet):
            return f"{addr.ifname} ({addr.interface})"
    return None


def lab_bridge_names(cfg: ClusterConfig) -> set[str]:
    """The bridge of the lab's own private network, which may exist from this very cluster."""
    out = shell.run(["docker", "network", "inspect", "--format", "{{.Id}}", vagrant_network_name(cfg)],
                    check=False)
    return {f"br-{out.stdout.strip()[:12]}"} if out.ok else set()


def before_up(cfg: ClusterConfig) -> upstream.Decision:
    """Everything a run needs, checked before the box or any node exists; returns which Calico
    this run will test (a choice that cannot complete is refused here, in one line)."""
    check_run_dir(cfg)
    if cfg.is_lab:
        check_lab_tools()
        conflict = subnet_conflict(cfg, host_networks(), lab_bridge_names(cfg))
        if conflict:
            raise UserError(f"subnet {cfg.subnet} is already on host interface {conflict}: "
                            "remove it or choose another with --subnet")
        clash = docker_network_on(cfg)
        if clash:
            raise UserError(f"subnet {cfg.subnet} is used by Docker network {clash}: remove it "
                            "or choose another --subnet")
    else:
        vm_preflight.preflight(cfg)
    return calico_decision(cfg)


def calico_decision(cfg: ClusterConfig) -> upstream.Decision:
    return upstream.decide(cfg, downloads.Lock.load(cfg.lock_path))


def docker_network_on(cfg: ClusterConfig) -> str | None:
    names = shell.run(["docker", "network", "ls", "--format", "{{.Name}}"], check=False).stdout.split()
    subnet = ipaddress.IPv4Network(cfg.subnet)
    for name in names:
        if name == vagrant_network_name(cfg):
            continue
        out = shell.run(["docker", "network", "inspect", "--format",
                         "{{range .IPAM.Config}}{{.Subnet}} {{end}}", name], check=False)
        for cidr in out.stdout.split():
            try:
                if ipaddress.ip_network(cidr, strict=False).overlaps(subnet):
                    return name
            except ValueError:
                continue
    return None

"""Host networking through the `ip` command and /proc/sys (the container runs with --net=host)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

log = logging.getLogger(__name__)

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]

# Interfaces Calico's "first-found" autodetection skips.
SKIPPED_PREFIXES = ("lo", "docker", "cbr", "dummy", "virbr", "lxcbr", "veth", "cali", "tunl",
                    "flannel", "kube-ipvs", "cni", "br-", "tmp", "temp")


class CommandError(RuntimeError):
    """A host networking command failed."""


def run(argv: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)


class NetDev:
    def __init__(self, runner: Runner = run, proc_sys: Path = Path("/proc/sys")) -> None:
        self.runner = runner
        self.proc_sys = proc_sys

    def _ip(self, *args: str, ok_errors: tuple[str, ...] = ()) -> str:
        result = self.runner(["ip", *args])
        if result.returncode != 0:
            err = (result.stderr or "").strip()
            if any(e in err for e in ok_errors):
                return ""
            raise CommandError(f"ip {' '.join(args)}: {err or 'exit ' + str(result.returncode)}")
        return result.stdout or ""

    def link_exists(self, name: str) -> bool:
        return self.runner(["ip", "link", "show", "dev", name]).returncode == 0

    def create_veth(self, host_name: str, peer_name: str, peer_mac: str, mtu: int | None = None) -> None:
        # A leftover from a crashed join would make `ip link add` fail: clear it first.
        self.delete_link(host_name)
        self.delete_link(peer_name)
        args = ["link", "add", host_name]
        if mtu:
            args += ["mtu", str(mtu)]
        args += ["type", "veth", "peer", "name", peer_name]
        if mtu:
            args += ["mtu", str(mtu)]
        self._ip(*args)
        self._ip("link", "set", "dev", peer_name, "address", peer_mac)
        self._ip("link", "set", "dev", host_name, "up")

    def delete_link(self, name: str) -> None:
        self._ip("link", "del", "dev", name, ok_errors=("Cannot find device", "does not exist"))

    def replace_host_route(self, ip: IPv4Address, dev: str) -> None:
        self._ip("route", "replace", f"{ip}/32", "dev", dev, "scope", "link")

    def delete_host_route(self, ip: IPv4Address, dev: str) -> None:
        self._ip("route", "del", f"{ip}/32", "dev", dev,
                 ok_errors=("No such process", "Cannot find device", "No such device"))

    def write_sysctl(self, path: str, value: str) -> None:
        """path like 'net/ipv4/conf/cali123/proxy_arp'."""
        target = self.proc_sys / path
        try:
            if target.read_text().strip() == value:
                return  # already set: also works where /proc/sys is read-only
        except OSError:
            pass
        try:
            target.write_text(value)
        except OSError as exc:
            raise CommandError(f"cannot write {value} to {target}: {exc} "
                               "(the container needs a writable /proc/sys: "
                               "--privileged or --security-opt systempaths=unconfined)") from exc

    def global_ipv4_addresses(self) -> list[tuple[str, IPv4Interface]]:
        """(interface, address/prefix) for every global-scope IPv4 address, in `ip` order."""
        out = self._ip("-4", "-o", "addr", "show", "scope", "global")
        found = []
        for line in out.splitlines():
            parts = line.split()
            if "inet" not in parts:
                continue
            iface = parts[1].split("@", 1)[0]
            found.append((iface, IPv4Interface(parts[parts.index("inet") + 1])))
        return found

    def autodetect_ipv4(self) -> tuple[str, IPv4Interface]:
        for iface, addr in self.global_ipv4_addresses():
            if iface.startswith(SKIPPED_PREFIXES):
                continue
            return iface, addr
        raise CommandError("no global IPv4 address found to autodetect the node IP")

    def interface_for(self, ip: IPv4Address) -> IPv4Interface | None:
        for _, addr in self.global_ipv4_addresses():
            if addr.ip == ip:
                return addr
        return None

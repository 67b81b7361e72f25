"""Host networking through the `ip` command and /proc/sys (the container runs with --net=host)."""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_interface
from pathlib import Path

log = logging.getLogger(__name__)

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]

# startup.go DEFAULT_INTERFACES_TO_EXCLUDE (calico v2.6.1). Go joins them into one regexp
# and uses MatchString, which is unanchored: "lo" skips any name containing "lo".
DEFAULT_INTERFACES_TO_EXCLUDE = ("docker.*", "cbr.*", "dummy.*", "virbr.*", "lxcbr.*", "veth.*", "lo",
                                 "cali.*", "tunl.*", "flannel.*")

IPInterface = IPv4Interface | IPv6Interface


@dataclass(frozen=True)
class HostInterface:
    """One interface as Go's net.Interfaces/Addrs see it: kernel index, name, addresses in order."""

    index: int
    name: str
    cidrs: tuple[IPInterface, ...] = field(default=())


def is_global_unicast(addr: IPInterface) -> bool:
    """Go's net.IP.IsGlobalUnicast: private ranges count, link-local and loopback do not."""
    ip = addr.ip
    if isinstance(ip, IPv4Address) and ip == IPv4Address("255.255.255.255"):
        return False
    return not (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local)


def _combined_regex(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("(" + ")|(".join(patterns) + ")")


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

    def interfaces(self, version: int = 4) -> list[HostInterface]:
        """Every interface holding an address of this IP version, in kernel index order."""
        out = self._ip(f"-{version}", "-o", "addr", "show")
        found: dict[int, tuple[str, list[IPInterface]]] = {}
        for line in out.splitlines():
            parts = line.split()
            family = "inet" if version == 4 else "inet6"
            if len(parts) < 4 or family not in parts or not parts[0].rstrip(":").isdigit():
                continue
            index = int(parts[0].rstrip(":"))
            name = parts[1].split("@", 1)[0]
            text = parts[parts.index(family) + 1]
            if "peer" in parts:  # point-to-point: the local address, the peer's prefix
                text = text.split("/", 1)[0] + "/" + parts[parts.index("peer") + 1].split("/", 1)[-1]
            try:
                addr = ip_interface(text)
            except ValueError:
                continue
            found.setdefault(index, (name, []))[1].append(addr)
        return [HostInterface(i, name, tuple(cidrs)) for i, (name, cidrs) in sorted(found.items())]

    def autodetect(self, version: int = 4, include: Sequence[str] = (),
                   exclude: Sequence[str] = DEFAULT_INTERFACES_TO_EXCLUDE) -> tuple[str, IPInterface]:
        """autodetection.FilteredEnumeration: interfaces in *reverse* index order, the first
        global unicast address of the first interface passing the name filters.
        """
        incl, excl = _combined_regex(include), _combined_regex(exclude)
        candidates = [i for i in reversed(self.interfaces(version))
                      if (incl is None or incl.search(i.name)) and not (excl is not None and excl.search(i.name))]
        if not candidates:
            raise CommandError("no valid host interfaces found")
        for iface in candidates:
            for addr in iface.cidrs:
                if is_global_unicast(addr):
                    return iface.name, addr
        raise CommandError(f"no valid IPv{version} addresses found on the host interfaces")

    def autodetect_ipv4(self) -> tuple[str, IPv4Interface]:
        """first-found for IPv4 (the guide's case: eth1 of a VM with eth0 NAT and eth1 private)."""
        name, addr = self.autodetect(4)
        assert isinstance(addr, IPv4Interface)
        return name, addr

    def find_address(self, ip: IPv4Address | IPv6Address) -> tuple[str, IPInterface] | None:
        """validateIP: the interface holding this address, any scope."""
        for iface in self.interfaces(ip.version):
            for addr in iface.cidrs:
                if addr.ip == ip:
                    return iface.name, addr
        return None

    def interface_for(self, ip: IPv4Address) -> IPv4Interface | None:
        for _, addr in self.global_ipv4_addresses():
            if addr.ip == ip:
                return addr
        return None

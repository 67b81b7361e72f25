"""Bringing the kernel in line with what felix wants: iptables, IP sets, routes, ARP, sysctls.

The planning functions are pure (state read from the kernel in, command text out) so tests can
check them without a kernel; `Dataplane` runs them with real iptables-restore, ipset and ip.
How felix 2.6.0 does each part: iptables/table.go (hash comments, insert/append, stale chain
removal, one iptables-restore --noflush per table), ipsets/ipsets.go (temp set + swap),
routetable/route_table.go (routes per cali interface, 10 s grace before removing unexpected
ones, static ARP entries, conntrack flush of removed IPs), intdataplane/endpoint_mgr.go
configureInterface (per-interface sysctls).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .felix_model import IPSET_MAIN_PREFIX, IPSET_TEMP_PREFIX, Model
from .felix_rules import (
    OWNED_CHAIN_PREFIXES,
    Chain,
    TableSpec,
    comment_fragment,
    desired_ipsets,
    render_tables,
)

log = logging.getLogger("felix")

Runner = Callable[..., subprocess.CompletedProcess]

KERNEL_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}
HASH_RE = re.compile(r'--comment "?cali:([a-zA-Z0-9_-]+)"?')
OLD_INSERT_RE = re.compile("|".join(f"(?:-j|--jump) {re.escape(p)}" for p in OWNED_CHAIN_PREFIXES))
# felix's own IP sets, including older felixes' names (ipsets/ipset_defs.go OwnsIPSet).
OWNED_IPSET_RE = re.compile(r"^(cali4|felix-4|felix-masq-ipam-pools|felix-all-ipam-pools)")
ROUTE_GRACE_SECONDS = 10.0  # routetable cleanupGracePeriod


def run(argv: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=60, check=False)


class DataplaneError(RuntimeError):
    """A command that programs the dataplane failed; the next apply retries."""


# -- iptables ---------------------------------------------------------------------------------------
@dataclass
class SavedTable:
    """Per chain, the hash of each rule as iptables-save shows it ("" = not one of ours)."""

    chains: dict[str, list[str]] = field(default_factory=dict)


def parse_save(text: str, table: str) -> SavedTable:
    saved = SavedTable()
    current = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = line[1:].strip()
        elif current != table:
            continue
        elif line.startswith(":"):
            saved.chains.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            chain = line.split()[1]
            m = HASH_RE.search(line)
            if m:
                saved.chains.setdefault(chain, []).append(m.group(1))
            elif OLD_INSERT_RE.search(line):
                # A jump to one of our chains without a hash: left by an older felix, ours to remove.
                saved.chains.setdefault(chain, []).append("-old-")
            else:
                saved.chains.setdefault(chain, []).append("")
    return saved


def expected_kernel_chain(ours: list[str], current: list[str], mode: str) -> list[str]:
    others = [""] * sum(1 for h in current if h == "")
    return ours + others if mode == "insert" else others + ours


def restore_text(spec: TableSpec, saved: SavedTable) -> str | None:
    """iptables-restore --noflush input that makes `saved` look like `spec`, or None if in sync.

    Chains whose rules differ are flushed and rewritten whole (one atomic restore per table);
    stale chains of ours are flushed and deleted last, after nothing refers to them.
    """
    declare: list[str] = []
    body: list[str] = []
    for name, chain in spec.chains.items():
        want = chain.hashes()
        have = saved.chains.get(name)
        if have == want:
            continue
        declare.append(f":{name} - -")
        body += chain.lines()
    for kernel_chain in KERNEL_CHAINS[spec.name]:
        rules = spec.inserts.get(kernel_chain, ())
        # Inserted rules are hashed as a chain named after the kernel's chain (calculateRuleInsertHashes).
        ours = Chain(kernel_chain, tuple(rules)).hashes()
        current = saved.chains.get(kernel_chain, [])
        if current == expected_kernel_chain(ours, current, spec.insert_mode):
            continue
        # Out of step: remove every rule of ours (highest number first), then put ours back.
        for index in range(len(current) - 1, -1, -1):
            if current[index] != "":
                body.append(f"-D {kernel_chain} {index + 1}")
        if spec.insert_mode == "insert":
            for rule, h in reversed(list(zip(rules, ours, strict=True))):
                body.append(rule.render("-I", kernel_chain, comment_fragment(h)))
        else:
            for rule, h in zip(rules, ours, strict=True):
                body.append(rule.render("-A", kernel_chain, comment_fragment(h)))
    stale = sorted(name for name in saved.chains
                   if name not in spec.chains and name not in KERNEL_CHAINS[spec.name]
                   and name.startswith(OWNED_CHAIN_PREFIXES))
    declare += [f":{name} - -" for name in stale]
    body += [f"--delete-chain {name}" for name in stale]
    if not declare and not body:
        return None
    return "\n".join([f"*{spec.name}", *declare, *body, "COMMIT", ""])


# -- IP sets ----------------------------------------------------------------------------------------
@dataclass
class SavedIpset:
    type: str
    maxelem: int | None
    members: set[str]


def parse_ipset_save(text: str) -> dict[str, SavedIpset]:
    sets: dict[str, SavedIpset] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "create":
            maxelem = None
            if "maxelem" in parts:
                maxelem = int(parts[parts.index("maxelem") + 1])
            sets[parts[1]] = SavedIpset(parts[2], maxelem, set())
        elif len(parts) >= 3 and parts[0] == "add" and parts[1] in sets:
            sets[parts[1]].members.add(_canonical_member(parts[2]))
    return sets


def _canonical_member(text: str) -> str:
    # ipset prints a /32 hash:net member without its mask.
    return text[:-3] if text.endswith("/32") else text


def ipset_restore_text(desired: dict[str, tuple[str, frozenset[str]]], saved: dict[str, SavedIpset],
                       maxelem: int) -> str | None:
    """`ipset restore` input: each changed set is rebuilt in its temp set and swapped in."""
    lines: list[str] = []
    for name, (set_type, members) in sorted(desired.items()):
        current = saved.get(name)
        want = {_canonical_member(m) for m in members}
        if current and current.type == set_type and current.maxelem == maxelem and current.members == want:
            continue
        temp = IPSET_TEMP_PREFIX + name[len(IPSET_MAIN_PREFIX):]
        if current is None:
            lines.append(f"create {name} {set_type} family inet maxelem {maxelem}")
        if temp in saved:
            lines.append(f"destroy {temp}")
        lines.append(f"create {temp} {set_type} family inet maxelem {maxelem}")
        lines += [f"add {temp} {m}" for m in sorted(members)]
        lines += [f"swap {name} {temp}", f"destroy {temp}"]
    return "\n".join(lines) + "\n" if lines else None


def stale_ipsets(desired: dict[str, tuple[str, frozenset[str]]], saved: dict[str, SavedIpset]) -> list[str]:
    return sorted(n for n in saved if n not in desired and OWNED_IPSET_RE.match(n))


# -- routes, ARP, sysctls ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Link:
    name: str
    up: bool  # admin up and oper up (or oper unknown, as for some virtual links)


@dataclass
class InterfacePlan:
    add_routes: list[tuple[str, str]] = field(default_factory=list)  # (cidr, dev)
    del_routes: list[tuple[str, str]] = field(default_factory=list)
    neighbours: list[tuple[str, str, str]] = field(default_factory=list)  # (ip, mac, dev)
    del_neighbours: list[tuple[str, str]] = field(default_factory=list)  # (ip, dev)
    sysctls: list[tuple[str, str]] = field(default_factory=list)  # (path below /proc/sys, value)
    conntrack_flush: list[str] = field(default_factory=list)
    grace: bool = False  # some unexpected route kept for the grace period: look again soon


def interface_sysctls(name: str) -> list[tuple[str, str]]:
    """endpoint_mgr.go configureInterface, IPv4."""
    return [(f"net/ipv4/conf/{name}/rp_filter", "1"),
            (f"net/ipv4/conf/{name}/route_localnet", "1"),
            (f"net/ipv4/conf/{name}/proxy_arp", "1"),
            (f"net/ipv4/neigh/{name}/proxy_delay", "0"),
            (f"net/ipv4/conf/{name}/forwarding", "1")]


def plan_interfaces(model: Model, links: dict[str, Link], routes: list[tuple[str, str]],
                    neighbours: dict[tuple[str, str], str], first_seen: dict[str, float],
                    now: float) -> InterfacePlan:
    """What to change for this host's endpoints, given the kernel's links, routes, neighbours."""
    plan = InterfacePlan()
    prefixes = model.settings.interface_prefixes
    wanted: dict[str, dict[str, str | None]] = {}  # dev -> {cidr: mac}
    for endpoint in model.local_endpoints():
        if endpoint.admin_up:
            for net in endpoint.ipv4_nets:
                wanted.setdefault(endpoint.name, {})[net] = endpoint.mac
        link = links.get(endpoint.name)
        if link is not None and link.up:
            plan.sysctls += interface_sysctls(endpoint.name)
    have: dict[str, set[str]] = {}
    for cidr, dev in routes:
        have.setdefault(dev, set()).add(cidr)
    for dev, cidrs in sorted(have.items()):
        if not dev.startswith(prefixes):
            continue  # only routes on our interfaces are ours
        for cidr in sorted(cidrs - set(wanted.get(dev, {}))):
            if now - first_seen.get(dev, 0.0) < ROUTE_GRACE_SECONDS:
                plan.grace = True
                continue
            plan.del_routes.append((cidr, dev))
            address = cidr.split("/", 1)[0]
            plan.conntrack_flush.append(address)
            if (address, dev) in neighbours:
                plan.del_neighbours.append((address, dev))
    for dev, targets in sorted(wanted.items()):
        if dev not in links:
            continue  # the veth is not there yet; programmed once it appears
        for cidr, mac in sorted(targets.items()):
            if cidr not in have.get(dev, set()):
                plan.add_routes.append((cidr, dev))
            address = cidr.split("/", 1)[0]
            if mac and neighbours.get((address, dev), "").lower() != mac.lower():
                plan.neighbours.append((address, mac, dev))
    return plan


IFF_UP = 0x1  # include/uapi/linux/if.h: the admin-up flag `ip link` shows as UP


def read_links(folder: Path, prefixes: Sequence[str]) -> dict[str, Link]:
    """The interfaces felix handles, as `ip -j link` reports them (admin up, operational state up
    or unknown), read from sysfs: felix looks every second, and a process spawned that often
    from Python cost an emulated guest a few per cent of its CPU."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise DataplaneError(f"cannot list the interfaces in {folder}: {exc}") from None
    links = {}
    for name in names:
        if not name.startswith(tuple(prefixes)):
            continue
        try:
            flags = int((folder / name / "flags").read_text().strip(), 16)
            oper = (folder / name / "operstate").read_text().strip().upper()
        except (OSError, ValueError):
            continue  # gone while being listed: the next look no longer sees it
        links[name] = Link(name, bool(flags & IFF_UP) and oper in ("UP", "UNKNOWN"))
    return links


def parse_routes(text: str) -> list[tuple[str, str]]:
    found = []
    for item in json.loads(text or "[]"):
        dst, dev = item.get("dst", ""), item.get("dev", "")
        if dst and dev and dst != "default":
            found.append((dst if "/" in dst else dst + "/32", dev))
    return found


def parse_neighbours(text: str) -> dict[tuple[str, str], str]:
    found = {}
    for item in json.loads(text or "[]"):
        if "PERMANENT" in item.get("state", []) and item.get("lladdr"):
            found[(item["dst"], item["dev"])] = item["lladdr"]
    return found


# -- the executor -----------------------------------------------------------------------------------
@dataclass
class ApplyResult:
    ok: bool
    changed: list[str] = field(default_factory=list)
    grace: bool = False


class Dataplane:
    """Reads the kernel's state and applies the plans with real commands."""

    def __init__(self, iptables: str, runner: Runner = run, proc_sys: Path = Path("/proc/sys"),
                 clock: Callable[[], float] = time.monotonic, sys_class_net: Path = Path("/sys/class/net")) -> None:
        self.iptables = iptables  # "iptables-legacy", "iptables-nft" or "iptables"
        self.runner = runner
        self.proc_sys = proc_sys
        self.sys_class_net = sys_class_net
        self.clock = clock
        self.first_seen: dict[str, float] = {}
        self.warned_tables: set[str] = set()

    def _cmd(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        try:
            return self.runner(argv, stdin) if stdin is not None else self.runner(argv)
        except FileNotFoundError as exc:
            raise DataplaneError(f"{argv[0]} is not installed ({exc})") from None

    def _check(self, argv: list[str], stdin: str | None = None) -> str:
        result = self._cmd(argv, stdin)
        if result.returncode != 0:
            err = (result.stderr or "").strip() or f"exit {result.returncode}"
            raise DataplaneError(f"{' '.join(argv)}: {err}" + (f"\ninput was:\n{stdin}" if stdin else ""))
        return result.stdout or ""

    def links(self, prefixes: Sequence[str]) -> dict[str, Link]:
        links = read_links(self.sys_class_net, prefixes)
        now = self.clock()
        for name in links:
            self.first_seen.setdefault(name, now)
        for name in list(self.first_seen):
            if name not in links:
                del self.first_seen[name]
        return links

    # iptables
    def save_table(self, table: str) -> SavedTable:
        return parse_save(self._check([f"{self.iptables}-save", "-t", table]), table)

    def apply_iptables(self, tables: dict[str, TableSpec], only: Sequence[str] | None = None) -> list[str]:
        changed = []
        for name in only or ("raw", "mangle", "nat", "filter"):
            spec = tables[name]
            try:
                text = restore_text(spec, self.save_table(name))
                if text is None:
                    continue
                self._check([f"{self.iptables}-restore", "--noflush", "--wait", "10"], text)
                changed.append(f"iptables {name}")
            except DataplaneError as exc:
                if name in ("raw", "mangle"):
                    # Those only matter for host endpoints, which the double does not model: a
                    # kernel without the table (no iptable_raw module) must not stop policy.
                    if name not in self.warned_tables:
                        log.warning("Cannot program the %s table (continuing without it): %s", name, exc)
                        self.warned_tables.add(name)
                    continue
                raise
        return changed

    # ipsets
    def saved_ipsets(self) -> dict[str, SavedIpset]:
        sets = parse_ipset_save(self._check(["ipset", "save"]))
        return {n: s for n, s in sets.items() if OWNED_IPSET_RE.match(n)}

    # routes etc.
    def kernel_routes(self) -> list[tuple[str, str]]:
        return parse_routes(self._check(["ip", "-j", "-4", "route", "show", "table", "main"]))

    def kernel_neighbours(self) -> dict[tuple[str, str], str]:
        return parse_neighbours(self._check(["ip", "-j", "-4", "neigh", "show", "nud", "permanent"]))

    def write_sysctl(self, path: str, value: str) -> bool:
        target = self.proc_sys / path
        try:
            if target.read_text().strip() == value:
                return False
            target.write_text(value)
            return True
        except OSError as exc:
            raise DataplaneError(f"cannot write {value} to {target}: {exc}") from None

    def apply(self, model: Model, links: dict[str, Link], ipsets_only: bool = False) -> ApplyResult:
        """One pass, in felix's order: IP sets first (rules refer to them), then iptables, then
        stale IP sets (no longer referenced), then routes, ARP entries and sysctls. `ipsets_only`:
        the IP sets' own resync (IpsetsRefreshInterval), as felix runs it apart from the rest."""
        result = ApplyResult(ok=True)
        sets = desired_ipsets(model)
        saved_sets = self.saved_ipsets()
        text = ipset_restore_text(sets, saved_sets, model.settings.max_ipset_size)
        if text:
            self._check(["ipset", "restore"], text)
            result.changed.append("ipsets")
        if ipsets_only:
            return result
        tables = render_tables(model)
        result.changed += self.apply_iptables(tables)
        for name in stale_ipsets(sets, saved_sets):
            if self._cmd(["ipset", "destroy", name]).returncode == 0:
                result.changed.append(f"ipset -{name}")
        plan = plan_interfaces(model, links, self.kernel_routes(), self.kernel_neighbours(),
                               self.first_seen, self.clock())
        result.grace = plan.grace
        for cidr, dev in plan.del_routes:
            self._cmd(["ip", "route", "del", cidr, "dev", dev])
            result.changed.append(f"route -{cidr} dev {dev}")
        for address, dev in plan.del_neighbours:
            self._cmd(["ip", "neigh", "del", address, "dev", dev])
        for address in plan.conntrack_flush:
            self.flush_conntrack(address)
        failures = []
        for cidr, dev in plan.add_routes:
            routed = self._cmd(["ip", "route", "replace", cidr, "dev", dev, "scope", "link"])
            if routed.returncode != 0:
                failures.append(f"route {cidr} dev {dev}: {(routed.stderr or '').strip()}")
            else:
                result.changed.append(f"route {cidr} dev {dev}")
        for address, mac, dev in plan.neighbours:
            neigh = self._cmd(["ip", "neigh", "replace", address, "lladdr", mac, "dev", dev, "nud", "permanent"])
            if neigh.returncode != 0:
                failures.append(f"neighbour {address} dev {dev}: {(neigh.stderr or '').strip()}")
        for path, value in plan.sysctls:
            try:
                if self.write_sysctl(path, value):
                    result.changed.append(f"sysctl {path}={value}")
            except DataplaneError as exc:
                failures.append(str(exc))
        if failures:
            # Usually an interface going away under us: retried on the next pass.
            log.warning("Some interface updates failed (will retry): %s", "; ".join(failures))
            result.ok = False
        return result

    def flush_conntrack(self, address: str) -> None:
        """conntrack/conntrack.go: forget flows of an IP that is no longer routed here."""
        for direction in ("--orig-src", "--reply-src"):
            try:
                self.runner(["conntrack", "--family", "ipv4", "--delete", direction, address])
            except FileNotFoundError:
                return

"""Where to send a workload's packet to show felix's NAT outgoing, and where to count it.

felix 2.6 masquerades traffic from a masquerade pool to destinations outside every pool, so the
target must be outside the pools and must really leave the workload's node. The first choice is
an address of the other node (the packets are counted there, as they arrive). An address the
source node holds itself is no target: VirtualBox gives every guest's NAT interface the same
10.0.2.15 (VirtualBox manual, "Network Address Translation (NAT)"), which the source node routes
to itself (`ip route get` says `local`). When the other node has nothing else outside the pools,
the target is the source node's default gateway (VirtualBox's NAT 10.0.2.2, a host-side address)
and the packets are counted on the source node by their conntrack entry: one masqueraded to the
node's address has that address as its reply destination (`--ctstate SNAT --ctrepldst`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from calicolab.core.remote import Node

# Interfaces whose addresses are never a NAT target: Docker's bridge (172.17.0.1 on every node
# alike) and felix's workload interfaces.
SKIPPED_INTERFACES = ("docker", "cali")


@dataclass(frozen=True)
class Address:
    iface: str
    interface: ipaddress.IPv4Interface
    scope: str

    @property
    def ip(self) -> ipaddress.IPv4Address:
        return self.interface.ip


@dataclass(frozen=True)
class NatTarget:
    address: str | None   # None: nothing outside the pools to send to
    count_on: str         # "far": echo requests counted arriving at the other node; "source": by conntrack
    skipped: tuple[str, ...] = ()  # why other candidates were not taken, one line each

    def describe(self) -> str:
        return "; ".join(self.skipped) or "first candidate taken"


def parse_addresses(text: str) -> list[Address]:
    """`ip -4 -o addr show` (iproute2): `<n>: <iface>    inet <a.b.c.d/len> [brd ..] scope <s> ...`."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if "inet" not in words:
            continue
        at = words.index("inet")
        try:
            interface = ipaddress.IPv4Interface(words[at + 1])
        except (IndexError, ValueError):
            continue
        scope = words[words.index("scope") + 1] if "scope" in words[:-1] else ""
        found.append(Address(words[1].rstrip(":").split("@")[0], interface, scope))
    return found


def default_gateway(text: str) -> str | None:
    """`ip -4 route show default`: `default via <gw> dev <iface> ...`."""
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["default"] and "via" in words[:-1]:
            return words[words.index("via") + 1]
    return None


def choose(far_name: str, far_text: str, source_name: str, source_text: str, route_text: str,
           pools: list[ipaddress.IPv4Network]) -> NatTarget:
    """far_text/source_text: each node's `ip -4 -o addr show`; route_text: the source node's
    `ip -4 route show default`."""
    own = {a.ip for a in parse_addresses(source_text)}
    skipped = []
    for cand in parse_addresses(far_text):
        if cand.scope != "global" or cand.iface.startswith(SKIPPED_INTERFACES):
            continue
        if any(cand.ip in pool for pool in pools):
            continue  # inside a pool: no NAT by design (the other half of the check)
        if cand.ip in own:
            skipped.append(f"{far_name}'s {cand.ip} ({cand.iface}) is also an address of {source_name} (VirtualBox "
                           f"gives every guest's NAT interface 10.0.2.15): {source_name} keeps it local")
            continue
        return NatTarget(str(cand.ip), "far", tuple(skipped))
    gateway = default_gateway(route_text)
    if gateway is None:
        skipped.append(f"{source_name} has no default route")
        return NatTarget(None, "source", tuple(skipped))
    gw = ipaddress.IPv4Address(gateway)
    if any(gw in pool for pool in pools) or gw in own:
        skipped.append(f"{source_name}'s default gateway {gw} is inside a pool or its own address")
        return NatTarget(None, "source", tuple(skipped))
    skipped.append(f"{far_name} has no other address outside the pools: sending to {source_name}'s default gateway "
                   f"{gw} (host side) and counting by conntrack on {source_name}")
    return NatTarget(str(gw), "source", tuple(skipped))


def pick(source: Node, far: Node, pools: list[ipaddress.IPv4Network]) -> NatTarget:
    return choose(far.name, far.run("ip -4 -o addr show").stdout, source.name,
                  source.run("ip -4 -o addr show").stdout, source.run("ip -4 route show default").stdout, pools)


def conntrack_counting_rules(workload_ip: str, target: str, nat_src: str, tag: str) -> dict[str, str]:
    """Counting rules (no target) for mangle POSTROUTING on the source node, which runs before the
    nat table's MASQUERADE: the flow's first packet is not yet bound, every later one of the same
    ping (one ICMP id, one conntrack entry) is, with the node's address as reply destination when
    felix masqueraded it."""
    base = f"-p icmp -s {workload_ip} -d {target} -m conntrack"
    return {"host": f"{base} --ctstate SNAT --ctrepldst {nat_src} -m comment --comment {tag}-host",
            "workload": f"{base} ! --ctstate SNAT -m comment --comment {tag}-workload"}

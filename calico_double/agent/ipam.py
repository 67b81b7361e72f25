"""Calico 2.6's block IPAM over etcd v2 (the model libcalico-go used), IPv4 only.

A pool is cut into /26 blocks. A host claims a block (affinity "host:<node>") and hands
out addresses from it; peers reach the whole block through one BGP route to that host.
Every write is a compare-and-swap, so two hosts racing for a block or an address see a
conflict and retry instead of sharing it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network

from .etcd import EtcdClient, EtcdConflict, EtcdKeyNotFound

log = logging.getLogger(__name__)

BLOCK_PREFIX = 26
BLOCK_SIZE = 2 ** (32 - BLOCK_PREFIX)
POOL_DIR = "/calico/v1/ipam/v4/pool"
BLOCK_DIR = "/calico/ipam/v2/assignment/ipv4/block"
DEFAULT_POOL = IPv4Network("192.168.0.0/16")


def host_affinity_dir(node: str) -> str:
    return f"/calico/ipam/v2/host/{node}/ipv4/block"


def cidr_to_name(net: IPv4Network) -> str:
    """Calico writes CIDRs in keys with '-' for '/': 192.168.104.0/26 -> 192.168.104.0-26."""
    return f"{net.network_address}-{net.prefixlen}"


def name_to_cidr(name: str) -> IPv4Network:
    return IPv4Network(name.replace("-", "/"))


def block_of(ip: IPv4Address) -> IPv4Network:
    return IPv4Network(f"{ip}/{BLOCK_PREFIX}", strict=False)


def pool_json(cidr: IPv4Network) -> str:
    """A v1 pool value as calicoctl/calico-node 2.6 wrote it."""
    return json.dumps({"cidr": str(cidr), "ipip": "", "masquerade": False, "ipam": True, "disabled": False})


class IpamError(Exception):
    """An address cannot be assigned or released."""


class PoolExhausted(IpamError):
    """No free address in this host's blocks and no unclaimed block left in the pools."""


@dataclass(frozen=True)
class Pool:
    cidr: IPv4Network
    ipip: str = ""
    masquerade: bool = False
    disabled: bool = False

    @classmethod
    def from_json(cls, text: str) -> Pool:
        data = json.loads(text)
        return cls(
            cidr=IPv4Network(data["cidr"]),
            ipip=data.get("ipip") or "",
            masquerade=bool(data.get("masquerade", False)),
            disabled=bool(data.get("disabled", False)),
        )


@dataclass
class Block:
    """One /26 allocation block, stored as one JSON value (libcalico-go's AllocationBlock)."""

    cidr: IPv4Network
    affinity: str | None
    allocations: list[int | None]
    unallocated: list[int]
    attributes: list[dict] = field(default_factory=list)
    strict_affinity: bool = False

    @classmethod
    def new(cls, cidr: IPv4Network, node: str) -> Block:
        size = cidr.num_addresses
        return cls(cidr=cidr, affinity=f"host:{node}", allocations=[None] * size,
                   unallocated=list(range(size)))

    @classmethod
    def from_json(cls, text: str) -> Block:
        data = json.loads(text)
        return cls(
            cidr=IPv4Network(data["cidr"]),
            affinity=data.get("affinity"),
            allocations=list(data.get("allocations", [])),
            unallocated=list(data.get("unallocated", [])),
            attributes=list(data.get("attributes") or []),
            strict_affinity=bool(data.get("strictAffinity", False)),
        )

    def to_json(self) -> str:
        return json.dumps({
            "cidr": str(self.cidr),
            "affinity": self.affinity,
            "strictAffinity": self.strict_affinity,
            "allocations": self.allocations,
            "unallocated": self.unallocated,
            "attributes": self.attributes,
        })

    def _attribute_index(self) -> int:
        # The libnetwork driver assigns without a handle or extra attributes, so every
        # allocation shares one {"handle_id": null, "secondary": null} entry.
        wanted = {"handle_id": None, "secondary": None}
        if wanted not in self.attributes:
            self.attributes.append(wanted)
        return self.attributes.index(wanted)

    def assign_next(self) -> IPv4Address | None:
        """Take the first unallocated ordinal (Calico's order), or None when full."""
        if not self.unallocated:
            return None
        ordinal = self.unallocated.pop(0)
        self.allocations[ordinal] = self._attribute_index()
        return self.cidr.network_address + ordinal

    def assign(self, ip: IPv4Address) -> None:
        ordinal = int(ip) - int(self.cidr.network_address)
        if ordinal not in self.unallocated:
            raise IpamError(f"Address {ip} is already assigned in block {self.cidr}")
        self.unallocated.remove(ordinal)
        self.allocations[ordinal] = self._attribute_index()

    def release(self, ip: IPv4Address) -> bool:
        ordinal = int(ip) - int(self.cidr.network_address)
        if not 0 <= ordinal < len(self.allocations) or self.allocations[ordinal] is None:
            return False
        self.allocations[ordinal] = None
        self.unallocated.append(ordinal)
        if all(a is None for a in self.allocations):
            self.attributes = []
        return True

    @property
    def in_use(self) -> int:
        return sum(1 for a in self.allocations if a is not None)


def candidate_blocks(pool: IPv4Network, node: str) -> Iterator[IPv4Network]:
    """All /26 blocks of a pool, starting at a point derived from the node name.

    Like libcalico-go, a host's first block is deterministic but different hosts start in
    different places, so they rarely even try the same block.
    """
    if pool.prefixlen > BLOCK_PREFIX:
        return
    count = 2 ** (BLOCK_PREFIX - pool.prefixlen)
    start = int.from_bytes(hashlib.sha256(node.encode()).digest()[:8], "big") % count
    base = int(pool.network_address)
    for i in range(count):
        yield IPv4Network((base + ((start + i) % count) * BLOCK_SIZE, BLOCK_PREFIX))


class Ipam:
    """Assigns and releases workload IPv4 addresses for one node."""

    def __init__(self, etcd: EtcdClient, node: str, max_retries: int = 20) -> None:
        self.etcd = etcd
        self.node = node
        self.max_retries = max_retries

    # -- reading -----------------------------------------------------------------------------
    def pools(self) -> list[Pool]:
        pools = []
        for node in self.etcd.children(POOL_DIR):
            try:
                pools.append(Pool.from_json(node.value or ""))
            except (ValueError, KeyError) as exc:
                log.warning("Ignoring unreadable pool %s: %s", node.key, exc)
        return sorted(pools, key=lambda p: p.cidr)

    def find_pool(self, cidr: IPv4Network) -> Pool | None:
        return next((p for p in self.pools() if p.cidr == cidr), None)

    def pool_containing(self, net: IPv4Network | IPv4Address) -> Pool | None:
        for pool in self.pools():
            if isinstance(net, IPv4Network) and net.subnet_of(pool.cidr):
                return pool
            if isinstance(net, IPv4Address) and net in pool.cidr:
                return pool
        return None

    def own_blocks(self) -> list[IPv4Network]:
        """Blocks affine to this host (what BIRD blackholes and advertises)."""
        blocks = []
        for node in self.etcd.children(host_affinity_dir(self.node)):
            try:
                blocks.append(name_to_cidr(node.name))
            except ValueError:
                log.warning("Ignoring malformed affinity key %s", node.key)
        return sorted(blocks)

    # -- assignment --------------------------------------------------------------------------
    def auto_assign(self, pools: list[IPv4Network] | None = None) -> IPv4Address:
        """Assign one address: from this host's blocks first, else from a newly claimed block."""
        enabled = [p.cidr for p in self.pools() if not p.disabled]
        # A network created with --subnet assigns only inside that subnet, which must lie
        # inside an enabled Calico pool.
        active = enabled if pools is None else [r for r in pools if any(r.subnet_of(e) for e in enabled)]
        if not active:
            raise IpamError("No configured Calico pools" if pools is None else
                            f"The requested pool(s) {', '.join(map(str, pools))} are not configured Calico pools")
        for _ in range(self.max_retries):
            for block in self.own_blocks():
                if not any(block.subnet_of(p) for p in active):
                    continue
                ip = self._update_block(block, lambda b: b.assign_next())
                if ip is not None:
                    log.info("Assigned %s from block %s", ip, block)
                    return ip
            if self._claim_block(active) is None:
                break
        raise PoolExhausted(f"No more free addresses in pools {', '.join(map(str, active))}")

    def assign_ip(self, ip: IPv4Address) -> None:
        """Reserve a specific address (docker run --ip)."""
        if self.pool_containing(ip) is None:
            raise IpamError(f"The requested IP address {ip} is not in any configured Calico pool")
        block = block_of(ip)
        for _ in range(self.max_retries):
            try:
                self._update_block(block, lambda b: b.assign(ip) or True, missing_ok=False)
                log.info("Assigned requested address %s in block %s", ip, block)
                return
            except EtcdKeyNotFound:
                # Nobody owns the block yet: claim it for this host, then assign.
                self._try_claim(block)
        raise IpamError(f"Could not assign {ip}: too many concurrent updates to {block}")

    def release(self, ip: IPv4Address) -> bool:
        """Free an address; True when it was assigned. Releasing a free address is a no-op."""
        try:
            released = self._update_block(block_of(ip), lambda b: b.release(ip) or None, missing_ok=False)
        except EtcdKeyNotFound:
            log.info("Release %s: block %s does not exist", ip, block_of(ip))
            return False
        if released:
            log.info("Released %s", ip)
        return bool(released)

    def reconcile_affinities(self) -> None:
        """Recreate this host's affinity keys from block values (heals a crash between the two writes)."""
        for node in self.etcd.children(BLOCK_DIR):
            try:
                block = Block.from_json(node.value or "")
            except (ValueError, KeyError):
                continue
            if block.affinity == f"host:{self.node}":
                key = f"{host_affinity_dir(self.node)}/{cidr_to_name(block.cidr)}"
                if self.etcd.create_if_absent(key, "{}"):
                    log.info("Restored affinity of block %s to %s", block.cidr, self.node)

    # -- internals ---------------------------------------------------------------------------
    def _update_block(self, cidr: IPv4Network, change: Callable[[Block], object],
                      missing_ok: bool = True) -> object:
        """Read-modify-write one block with prevIndex; retry when another writer got there first.

        `change` mutates the block and returns a result; a falsy result means "nothing to
        write" (block full, address not assigned).
        """
        key = f"{BLOCK_DIR}/{cidr_to_name(cidr)}"
        for attempt in range(self.max_retries):
            try:
                current = self.etcd.get(key)
            except EtcdKeyNotFound:
                if missing_ok:
                    return None
                raise
            block = Block.from_json(current.value or "")
            result = change(block)
            if not result:
                return result
            try:
                self.etcd.set(key, block.to_json(), prev_index=current.modified_index)
                return result
            except EtcdConflict:
                log.info("Block %s changed under us (attempt %d), retrying", cidr, attempt + 1)
        raise IpamError(f"Too many concurrent updates to block {cidr}")

    def _claim_block(self, pools: list[IPv4Network]) -> IPv4Network | None:
        existing = {node.name for node in self.etcd.children(BLOCK_DIR)}
        for pool in pools:
            for block in candidate_blocks(pool, self.node):
                if cidr_to_name(block) in existing:
                    continue
                if self._try_claim(block):
                    return block
        return None

    def _try_claim(self, block: IPv4Network) -> bool:
        key = f"{BLOCK_DIR}/{cidr_to_name(block)}"
        try:
            # prevExist=false is the claim: exactly one host can create the block.
            self.etcd.create(key, Block.new(block, self.node).to_json())
        except EtcdConflict:
            log.info("Block %s was claimed by another host first", block)
            return False
        self.etcd.set(f"{host_affinity_dir(self.node)}/{cidr_to_name(block)}", "{}")
        log.info("Claimed block %s for host %s", block, self.node)
        return True


def parse_ipv4(text: str) -> IPv4Address:
    """Accept '1.2.3.4' or '1.2.3.4/32' (Docker sends both forms)."""
    value = ip_address(text.split("/", 1)[0])
    if not isinstance(value, IPv4Address):
        raise IpamError(f"{text} is not an IPv4 address (IPv6 is not implemented by the Calico double)")
    return value


def parse_ipv4_network(text: str) -> IPv4Network:
    net = ip_network(text, strict=False)
    if not isinstance(net, IPv4Network):
        raise IpamError(f"{text} is not an IPv4 network")
    return net

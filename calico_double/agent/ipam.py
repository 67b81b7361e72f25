"""Calico's block IPAM over etcd v2, IPv4, as libnetwork-plugin v1.1.0 runs it.

The plugin vendors projectcalico/libcalico-go@f87d397; this follows its
lib/client/ipam.go, ipam_block.go and ipam_block_reader_writer.go:

- a pool is cut into /26 blocks; a host claims a block by creating its affinity key
  (/calico/ipam/v2/host/<host>/ipv4/block/<cidr>, value `{}`) and then the block itself
  with prevExist=false, so exactly one host wins a block;
- a host's search for a free block starts at an index drawn from Go's math/rand seeded
  with the FNV-1 hash of the host name (gorand.py) and walks on with wrap-around;
- addresses come from the host's affine blocks first, then from a newly claimed block,
  and, once no block is left unclaimed, from other hosts' blocks (non-strict affinity);
- every block write is a compare-and-swap on the etcd index, retried up to 100 times.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network

from .etcd import EtcdClient, EtcdConflict, EtcdKeyNotFound
from .gorand import host_start_index

log = logging.getLogger(__name__)

BLOCK_PREFIX = 26
BLOCK_SIZE = 2 ** (32 - BLOCK_PREFIX)
IPAM_RETRIES = 100  # libcalico-go ipamEtcdRetries
POOL_DIR = "/calico/v1/ipam/v4/pool"
POOL_DIR_V6 = "/calico/v1/ipam/v6/pool"
BLOCK_DIR = "/calico/ipam/v2/assignment/ipv4/block"
IPAM_CONFIG_KEY = "/calico/ipam/v2/config"
AFFINITY_VALUE = "{}"  # model.BlockAffinityValue
DEFAULT_POOL = IPv4Network("192.168.0.0/16")
NO_ATTRIBUTE = {"handle_id": None, "secondary": None}  # libnetwork passes no handle or attrs


def go_json(value: object) -> str:
    """Compact JSON as Go's encoding/json writes it (no spaces)."""
    return json.dumps(value, separators=(",", ":"))


def host_affinity_dir(node: str) -> str:
    return f"/calico/ipam/v2/host/{node}/ipv4/block"


def cidr_to_name(net: IPv4Network) -> str:
    """Calico writes CIDRs in keys with '-' for '/': 192.168.104.0/26 -> 192.168.104.0-26."""
    return f"{net.network_address}-{net.prefixlen}"


def name_to_cidr(name: str) -> IPv4Network:
    return IPv4Network(name.replace("-", "/", 1))


def block_of(ip: IPv4Address) -> IPv4Network:
    return IPv4Network(f"{ip}/{BLOCK_PREFIX}", strict=False)


def pool_json(cidr: IPv4Network, masquerade: bool = True, ipip_mode: str = "") -> str:
    """A v1 pool value as calico/node v2.6.1 writes it (libcalico-go v1.7.1 model.IPPool)."""
    return go_json({"cidr": str(cidr), "ipip": "tunl0" if ipip_mode else "", "ipip_mode": ipip_mode,
                    "masquerade": masquerade, "ipam": True, "disabled": False})


class IpamError(Exception):
    """An address cannot be assigned or released (the message is libcalico-go's)."""


class AffinityClaimed(IpamError):
    """Another host created the block between our affinity write and our block write."""


@dataclass(frozen=True)
class Pool:
    cidr: IPv4Network
    ipip: str = ""
    ipip_mode: str = ""
    masquerade: bool = False
    disabled: bool = False

    @classmethod
    def from_json(cls, text: str) -> Pool:
        data = json.loads(text)
        return cls(
            cidr=IPv4Network(data["cidr"]),
            ipip=data.get("ipip") or "",
            ipip_mode=data.get("ipip_mode") or "",
            masquerade=bool(data.get("masquerade", False)),
            disabled=bool(data.get("disabled", False)),
        )


@dataclass(frozen=True)
class IpamConfig:
    """/calico/ipam/v2/config; absent means auto-allocate on, strict affinity off."""

    strict_affinity: bool = False
    auto_allocate_blocks: bool = True


@dataclass
class Block:
    """One /26 allocation block, stored as one JSON value (model.AllocationBlock)."""

    cidr: IPv4Network
    affinity: str | None
    allocations: list[int | None]
    unallocated: list[int]
    # None until the first assignment: Go marshals the new block's nil slice as null.
    attributes: list[dict] | None = None
    strict_affinity: bool = False

    @classmethod
    def new(cls, cidr: IPv4Network, node: str, strict_affinity: bool = False) -> Block:
        return cls(cidr=cidr, affinity=f"host:{node}", allocations=[None] * BLOCK_SIZE,
                   unallocated=list(range(BLOCK_SIZE)), strict_affinity=strict_affinity)

    @classmethod
    def from_json(cls, text: str) -> Block:
        data = json.loads(text)
        affinity = data.get("affinity")
        if affinity is None and data.get("hostAffinity"):
            affinity = "host:" + data["hostAffinity"]  # the deprecated field older releases wrote
        attributes = data.get("attributes")
        return cls(
            cidr=IPv4Network(data["cidr"]),
            affinity=affinity,
            allocations=list(data.get("allocations") or []),
            unallocated=list(data.get("unallocated") or []),
            attributes=None if attributes is None else list(attributes),
            strict_affinity=bool(data.get("strictAffinity", False)),
        )

    def to_json(self) -> str:
        return go_json({
            "cidr": str(self.cidr),
            "affinity": self.affinity,
            "strictAffinity": self.strict_affinity,
            "allocations": self.allocations,
            "unallocated": self.unallocated,
            "attributes": self.attributes,
        })

    def _attribute_index(self) -> int:
        """findOrAddAttribute: every libnetwork allocation shares one attribute entry."""
        if self.attributes is None:
            self.attributes = []
        if NO_ATTRIBUTE not in self.attributes:
            self.attributes.append(dict(NO_ATTRIBUTE))
        return self.attributes.index(NO_ATTRIBUTE)

    def affine_to(self, host: str) -> bool:
        return self.affinity == f"host:{host}"

    def auto_assign(self, num: int, host: str, affinity_check: bool) -> list[IPv4Address]:
        """Take the first `num` unallocated ordinals (Calico's order)."""
        if (self.strict_affinity or affinity_check) and self.affinity is not None and not self.affine_to(host):
            raise IpamError(f"Block affinity ({self.affinity}) does not match provided ({host})")
        ips = []
        while self.unallocated and len(ips) < num:
            ordinal = self.unallocated.pop(0)
            self.allocations[ordinal] = self._attribute_index()
            ips.append(self.cidr.network_address + ordinal)
        return ips

    def assign(self, ip: IPv4Address, host: str) -> None:
        if self.strict_affinity and self.affinity is not None and not self.affine_to(host):
            raise IpamError("Block host affinity does not match")
        ordinal = int(ip) - int(self.cidr.network_address)
        if self.allocations[ordinal] is not None:
            raise IpamError("Address already assigned in block")
        self.allocations[ordinal] = self._attribute_index()
        if ordinal in self.unallocated:
            self.unallocated.remove(ordinal)

    def release(self, ips: list[IPv4Address]) -> list[IPv4Address]:
        """Free the addresses; returns those that were not assigned.

        An attribute entry is dropped once no allocation refers to it any more and the
        remaining indexes are renumbered, as allocationBlock.release does.
        """
        not_assigned = []
        ordinals = []
        for ip in ips:
            ordinal = int(ip) - int(self.cidr.network_address)
            if self.allocations[ordinal] is None:
                not_assigned.append(ip)
            else:
                ordinals.append(ordinal)
        released: dict[int, int] = {}
        for ordinal in ordinals:
            index = self.allocations[ordinal]
            assert index is not None
            released[index] = released.get(index, 0) + 1
        in_use: dict[int, int] = {}
        for index in self.allocations:
            if index is not None:
                in_use[index] = in_use.get(index, 0) + 1
        drop = {index for index, count in released.items() if in_use[index] == count}
        if drop:
            kept = [i for i in range(len(self.attributes or [])) if i not in drop]
            renumber = {old: new for new, old in enumerate(kept)}
            self.attributes = [(self.attributes or [])[i] for i in kept]
            self.allocations = [None if a is None or a in drop else renumber[a] for a in self.allocations]
        for ordinal in ordinals:
            self.allocations[ordinal] = None
            self.unallocated.append(ordinal)
        return not_assigned

    @property
    def empty(self) -> bool:
        return len(self.unallocated) == BLOCK_SIZE

    @property
    def in_use(self) -> int:
        return sum(1 for a in self.allocations if a is not None)


def candidate_blocks(pool: IPv4Network, host: str) -> Iterator[IPv4Network]:
    """randomBlockGenerator: every /26 of the pool, from the host's seeded start, wrapping.

    Different hosts start in different places, so they rarely even try the same block;
    node1 starts at 192.168.166.128/26 and node2 at 192.168.104.0/26 in 192.168.0.0/16.
    """
    count = pool.num_addresses // BLOCK_SIZE
    start = host_start_index(host, count)
    base = int(pool.network_address)
    for i in range(count):
        yield IPv4Network((base + ((start + i) % count) * BLOCK_SIZE, BLOCK_PREFIX))


class Ipam:
    """libcalico-go's IPAM client for one host name (the name libnetwork passes)."""

    def __init__(self, etcd: EtcdClient, node: str, max_retries: int = IPAM_RETRIES) -> None:
        self.etcd = etcd
        self.node = node
        self.max_retries = max_retries

    # -- reading -----------------------------------------------------------------------------
    def pools(self) -> list[Pool]:
        """IPv4 pools in key order (libcalico-go lists etcd with sort=true)."""
        pools = []
        for node in sorted(self.etcd.children(POOL_DIR), key=lambda n: n.key):
            try:
                pools.append(Pool.from_json(node.value or ""))
            except (ValueError, KeyError) as exc:
                log.warning("Ignoring unreadable pool %s: %s", node.key, exc)
        return pools

    def find_pool(self, cidr: IPv4Network) -> Pool | None:
        return next((p for p in self.pools() if p.cidr == cidr), None)

    def pool_containing(self, net: IPv4Network | IPv4Address) -> Pool | None:
        for pool in self.pools():
            if isinstance(net, IPv4Network) and net.subnet_of(pool.cidr):
                return pool
            if isinstance(net, IPv4Address) and net in pool.cidr:
                return pool
        return None

    def config(self) -> IpamConfig:
        text = self.etcd.get_value(IPAM_CONFIG_KEY)
        if text is None:
            return IpamConfig()
        data = json.loads(text)
        # Both fields are omitempty in the model: a missing field is false.
        return IpamConfig(strict_affinity=bool(data.get("strict_affinity", False)),
                          auto_allocate_blocks=bool(data.get("auto_allocate_blocks", False)))

    def own_blocks(self) -> list[IPv4Network]:
        """Blocks affine to this host, in key order (what BIRD blackholes and advertises)."""
        blocks = []
        for node in sorted(self.etcd.children(host_affinity_dir(self.node)), key=lambda n: n.key):
            try:
                blocks.append(name_to_cidr(node.key.rsplit("/", 1)[-1]))
            except ValueError:
                log.warning("Ignoring malformed affinity key %s", node.key)
        return blocks

    # -- assignment --------------------------------------------------------------------------
    def auto_assign(self, num: int = 1, pools: list[IPv4Network] | None = None) -> list[IPv4Address]:
        """AutoAssign for IPv4: may return fewer than `num` addresses (none left) without error."""
        log.info("Auto-assign %d ipv4, 0 ipv6 addrs for host '%s'", num, self.node)
        given = list(pools or [])
        ips: list[IPv4Address] = []
        for block in self.own_blocks():
            if len(ips) >= num:
                break
            if given and not any(block.network_address in p for p in given):
                continue
            try:
                ips = self._assign_from_block(block, num, affinity_check=True)
            except (IpamError, EtcdKeyNotFound):
                ips = []  # upstream ignores errors from its own blocks and moves on
        if len(ips) < num:
            log.info("Ran out of existing affine blocks for host '%s'", self.node)
        config = self.config()
        if config.auto_allocate_blocks:
            retries = self.max_retries
            while len(ips) < num and retries > 0:
                retries -= 1
                block = self._claim_new_affine_block(given, config)
                if block is None:
                    break  # no free block left
                log.info("Claimed new block %s - assigning %d addresses", block, num - len(ips))
                try:
                    ips += self._assign_from_block(block, num - len(ips), config.strict_affinity)
                except (IpamError, EtcdKeyNotFound) as exc:
                    log.warning("Failed to assign IPs: %s", exc)
                    break
            if retries == 0:
                raise IpamError("Max retries hit")
        if not config.strict_affinity and len(ips) < num:
            log.info("Attempting to assign %d more addresses from non-affine blocks", num - len(ips))
            for pool in given or [p.cidr for p in self.pools() if not p.disabled]:
                for block in candidate_blocks(pool, self.node):
                    if len(ips) >= num:
                        break
                    try:
                        ips += self._assign_from_block(block, num - len(ips), affinity_check=False)
                    except (IpamError, EtcdKeyNotFound) as exc:
                        # The walk stops at the first block that does not exist.
                        log.warning("Failed to assign IPs in pool %s: %s", pool, exc)
                        break
        log.info("Auto-assigned %d out of %d IPv4s: %s", len(ips), num, [str(ip) for ip in ips])
        return ips

    def assign_ip(self, ip: IPv4Address) -> None:
        """AssignIP (docker run --ip): claims the address's block for this host if nobody has."""
        log.info("Assigning IP %s to host: %s", ip, self.node)
        if not self._within_configured_pools(ip):
            raise IpamError("The provided IP address is not in a configured pool\n")
        block = block_of(ip)
        key = f"{BLOCK_DIR}/{cidr_to_name(block)}"
        for _ in range(self.max_retries):
            try:
                current = self.etcd.get(key)
            except EtcdKeyNotFound:
                self._claim_block_affinity(block, self.config())
                log.info("Claimed new block: %s", block)
                continue
            value = Block.from_json(current.value or "")
            value.assign(ip, self.node)
            try:
                self.etcd.set(key, value.to_json(), prev_index=current.modified_index)
            except EtcdConflict as exc:
                # Unlike auto-assignment, AssignIP gives up on its first lost compare-and-swap.
                raise IpamError(f"update conflict: BlockKey(cidr={block})") from exc
            return
        raise IpamError("Max retries hit")

    def release(self, ip: IPv4Address) -> bool:
        """ReleaseIPs for one address; True when it was assigned. Releasing a free address is a no-op.

        A block left empty without affinity is deleted; otherwise the block is updated.
        """
        log.info("Releasing IP addresses: [%s]", ip)
        block = block_of(ip)
        key = f"{BLOCK_DIR}/{cidr_to_name(block)}"
        for attempt in range(self.max_retries):
            try:
                current = self.etcd.get(key)
            except EtcdKeyNotFound:
                return False
            value = Block.from_json(current.value or "")
            if value.release([ip]):
                return False
            try:
                if value.empty and value.affinity is None:
                    self.etcd.delete(key, prev_index=current.modified_index)
                else:
                    self.etcd.set(key, value.to_json(), prev_index=current.modified_index)
            except EtcdConflict:
                log.warning("Failed to update block '%s' - retry #%d", block, attempt)
                continue
            return True
        raise IpamError("Max retries hit")

    def reconcile_affinities(self) -> None:
        """Recreate this host's affinity keys from block values.

        Not in libcalico-go: a repair for affinity keys deleted by hand. Real claims write
        the affinity before the block, so a crash never leaves a block without one.
        """
        for node in self.etcd.children(BLOCK_DIR):
            try:
                block = Block.from_json(node.value or "")
            except (ValueError, KeyError):
                continue
            if block.affine_to(self.node):
                key = f"{host_affinity_dir(self.node)}/{cidr_to_name(block.cidr)}"
                if self.etcd.create_if_absent(key, AFFINITY_VALUE):
                    log.info("Restored affinity of block %s to %s", block.cidr, self.node)

    # -- internals ---------------------------------------------------------------------------
    def _within_configured_pools(self, ip: IPv4Address) -> bool:
        return any(ip in p.cidr for p in self.pools() if not p.disabled)

    def _assign_from_block(self, cidr: IPv4Network, num: int, affinity_check: bool) -> list[IPv4Address]:
        """assignFromExistingBlock: read, assign, compare-and-swap; retry on conflict.

        Raises EtcdKeyNotFound when the block does not exist; [] when it is full.
        """
        key = f"{BLOCK_DIR}/{cidr_to_name(cidr)}"
        ips: list[IPv4Address] = []
        for _ in range(self.max_retries):
            current = self.etcd.get(key)
            block = Block.from_json(current.value or "")
            ips = block.auto_assign(num, self.node, affinity_check)
            if not ips:
                log.info("Block %s is full", cidr)
                return []
            try:
                self.etcd.set(key, block.to_json(), prev_index=current.modified_index)
            except EtcdConflict:
                log.info("Failed to update block '%s' - try again", cidr)
                continue
            break
        return ips

    def _claim_new_affine_block(self, given: list[IPv4Network], config: IpamConfig) -> IPv4Network | None:
        """claimNewAffineBlock: the first block of the host's walk that does not exist yet.

        None when every block of every pool exists; AffinityClaimed when another host
        created the chosen block first (the assignment then fails, as upstream).
        """
        if given:
            enabled = {p.cidr for p in self.pools() if not p.disabled}
            for pool in given:
                if pool not in enabled:
                    raise IpamError(f"The given pool ({pool}) does not exist")
            pools = given
        else:
            pools = [p.cidr for p in self.pools() if not p.disabled]
        if not pools:
            raise IpamError("No configured Calico pools")
        log.info("Claiming a new affine block for host '%s'", self.node)
        for pool in pools:
            for block in candidate_blocks(pool, self.node):
                if self.etcd.get_value(f"{BLOCK_DIR}/{cidr_to_name(block)}") is None:
                    self._claim_block_affinity(block, config)
                    return block
        return None

    def _claim_block_affinity(self, block: IPv4Network, config: IpamConfig) -> None:
        """Affinity key first (an existing one is fine), then the block with prevExist=false."""
        if not self.node:
            raise IpamError("Hostname must be sepcified to claim block affinity")  # sic, upstream
        log.info("Host %s claiming block affinity for %s", self.node, block)
        affinity_key = f"{host_affinity_dir(self.node)}/{cidr_to_name(block)}"
        self.etcd.create_if_absent(affinity_key, AFFINITY_VALUE)
        key = f"{BLOCK_DIR}/{cidr_to_name(block)}"
        try:
            self.etcd.create(key, Block.new(block, self.node, config.strict_affinity).to_json())
            return
        except EtcdConflict:
            log.warning("Problem claiming block affinity: %s exists", block)
        existing = Block.from_json(self.etcd.get(key).value or "")
        if existing.affine_to(self.node):
            return  # another process on this host claimed it
        self.etcd.delete_if_present(affinity_key)
        raise AffinityClaimed(f"{block} already claimed by {existing.affinity}")


def parse_ipv4(text: str) -> IPv4Address:
    """Accept '1.2.3.4' or '1.2.3.4/32' (Docker sends both forms)."""
    value = ip_address(text.split("/", 1)[0])
    if not isinstance(value, IPv4Address):
        raise IpamError(f"{text} is not an IPv4 address")
    return value


def parse_ipv4_network(text: str) -> IPv4Network:
    net = ip_network(text, strict=False)
    if not isinstance(net, IPv4Network):
        raise IpamError(f"{text} is not an IPv4 network")
    return net

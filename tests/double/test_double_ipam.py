"""Block IPAM of the Calico double against an in-memory etcd."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network

import pytest

from calico_double.agent.ipam import (
    BLOCK_DIR,
    Block,
    Ipam,
    IpamError,
    PoolExhausted,
    candidate_blocks,
    cidr_to_name,
    host_affinity_dir,
    pool_json,
)

POOL = IPv4Network("192.168.0.0/16")


def add_pool(etcd, cidr: str) -> None:
    etcd.put(f"/calico/v1/ipam/v4/pool/{cidr.replace('/', '-')}", pool_json(IPv4Network(cidr)))


def block_value(etcd, block: IPv4Network) -> Block:
    return Block.from_json(etcd.get_value(f"{BLOCK_DIR}/{cidr_to_name(block)}"))


def test_candidate_blocks_are_deterministic_distinct_and_per_host() -> None:
    first = list(candidate_blocks(POOL, "node1"))
    assert first == list(candidate_blocks(POOL, "node1"))
    assert len(first) == len(set(first)) == 1024
    assert all(b.prefixlen == 26 and b.subnet_of(POOL) for b in first)
    assert first[0] != next(candidate_blocks(POOL, "node2"))


def test_first_assignment_claims_a_block_with_affinity(etcd) -> None:
    add_pool(etcd, "192.168.0.0/16")
    ipam = Ipam(etcd, "node1")
    ip = ipam.auto_assign()
    block = next(candidate_blocks(POOL, "node1"))
    assert ip == block.network_address  # Calico hands out ordinal 0 first
    assert etcd.get_value(f"{host_affinity_dir('node1')}/{cidr_to_name(block)}") == "{}"
    stored = json.loads(etcd.get_value(f"{BLOCK_DIR}/{cidr_to_name(block)}"))
    assert stored["cidr"] == str(block)
    assert stored["affinity"] == "host:node1"
    assert stored["allocations"][0] == 0 and stored["allocations"][1] is None
    assert len(stored["allocations"]) == 64 and 0 not in stored["unallocated"]
    assert stored["attributes"] == [{"handle_id": None, "secondary": None}]
    assert ipam.auto_assign() == ip + 1
    assert ipam.own_blocks() == [block]


def test_hosts_get_different_blocks_even_when_preferences_collide(etcd) -> None:
    add_pool(etcd, "192.168.0.0/16")
    node2_first = next(candidate_blocks(POOL, "node2"))
    # node1 already owns the block node2 would start with.
    etcd.put(f"{BLOCK_DIR}/{cidr_to_name(node2_first)}", Block.new(node2_first, "node1").to_json())
    ip = Ipam(etcd, "node2").auto_assign()
    assert ip not in node2_first
    assert block_value(etcd, IPv4Network(f"{ip}/26", strict=False)).affinity == "host:node2"


def test_claim_lost_to_a_racing_host_moves_to_the_next_block(etcd) -> None:
    add_pool(etcd, "192.168.0.0/16")
    wanted = list(candidate_blocks(POOL, "node1"))

    def rival_claims(key: str, _args: dict) -> None:
        etcd.put(key, Block.new(wanted[0], "node2").to_json())

    etcd.before_write = rival_claims
    ip = Ipam(etcd, "node1").auto_assign()
    assert ip in wanted[1]
    assert block_value(etcd, wanted[0]).affinity == "host:node2"


def test_assignment_retries_after_a_compare_and_swap_conflict(etcd) -> None:
    add_pool(etcd, "192.168.0.0/16")
    ipam = Ipam(etcd, "node1")
    first = ipam.auto_assign()
    block = IPv4Network(f"{first}/26", strict=False)
    key = f"{BLOCK_DIR}/{cidr_to_name(block)}"

    def rival_assigns(_key: str, _args: dict) -> None:
        rival = block_value(etcd, block)
        rival.assign_next()  # takes ordinal 1 behind our back
        etcd.put(key, rival.to_json())

    etcd.before_write = rival_assigns
    ours = ipam.auto_assign()
    assert ours == first + 2
    stored = block_value(etcd, block)
    assert stored.in_use == 3  # nobody's allocation was lost


def test_full_block_moves_on_to_a_new_block(etcd) -> None:
    add_pool(etcd, "10.10.0.0/25")  # two blocks
    ipam = Ipam(etcd, "node1")
    ips = [ipam.auto_assign() for _ in range(65)]
    assert len(set(ips)) == 65
    assert len(ipam.own_blocks()) == 2
    assert {IPv4Network(f"{ip}/26", strict=False) for ip in ips} == set(ipam.own_blocks())


def test_exhausted_pool_raises(etcd) -> None:
    add_pool(etcd, "10.10.0.0/26")
    ipam = Ipam(etcd, "node1")
    for _ in range(64):
        ipam.auto_assign()
    with pytest.raises(PoolExhausted):
        ipam.auto_assign()


def test_no_pool_is_an_error(etcd) -> None:
    with pytest.raises(IpamError, match="No configured Calico pools"):
        Ipam(etcd, "node1").auto_assign()


def test_requested_subnet_limits_assignment(etcd) -> None:
    add_pool(etcd, "192.168.0.0/16")
    ipam = Ipam(etcd, "node1")
    ip = ipam.auto_assign([IPv4Network("192.168.7.0/24")])
    assert ip in IPv4Network("192.168.7.0/24")
    with pytest.raises(IpamError, match="not configured Calico pools"):
        ipam.auto_assign([IPv4Network("10.0.0.0/24")])


def test_release_frees_the_address_once(etcd) -> None:
    add_pool(etcd, "192.168.0.0/16")
    ipam = Ipam(etcd, "node1")
    ip = ipam.auto_assign()
    ipam.auto_assign()
    assert ipam.release(ip) is True
    assert ipam.release(ip) is False
    block = block_value(etcd, IPv4Network(f"{ip}/26", strict=False))
    assert block.allocations[0] is None
    assert block.unallocated[-1] == 0  # a freed ordinal goes to the back, as in Calico
    assert ipam.release(IPv4Address("10.1.2.3")) is False  # no such block


def test_specific_address_claims_its_block_and_cannot_be_taken_twice(etcd) -> None:
    add_pool(etcd, "192.168.0.0/16")
    ipam = Ipam(etcd, "node1")
    ip = IPv4Address("192.168.50.70")
    ipam.assign_ip(ip)
    block = block_value(etcd, IPv4Network("192.168.50.64/26"))
    assert block.affinity == "host:node1" and block.allocations[6] == 0
    with pytest.raises(IpamError, match="already assigned"):
        ipam.assign_ip(ip)
    with pytest.raises(IpamError, match="not in any configured Calico pool"):
        ipam.assign_ip(IPv4Address("10.0.0.1"))


def test_reconcile_restores_missing_affinity_keys(etcd) -> None:
    block = IPv4Network("192.168.1.0/26")
    etcd.put(f"{BLOCK_DIR}/{cidr_to_name(block)}", Block.new(block, "node1").to_json())
    ipam = Ipam(etcd, "node1")
    assert ipam.own_blocks() == []
    ipam.reconcile_affinities()
    assert ipam.own_blocks() == [block]
    assert Ipam(etcd, "node2").own_blocks() == []

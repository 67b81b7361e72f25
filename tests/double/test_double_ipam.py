"""Block IPAM of the Calico double against an in-memory etcd, checked against libcalico-go@f87d397."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network

import pytest

from calico_double.agent.gorand import GoRandSource, big_int_rand, fnv1_32, host_start_index
from calico_double.agent.ipam import (
    BLOCK_DIR,
    AffinityClaimed,
    Block,
    Ipam,
    IpamError,
    candidate_blocks,
    cidr_to_name,
    host_affinity_dir,
    pool_json,
)

POOL = IPv4Network("192.168.0.0/16")


def add_pool(etcd, cidr: str, disabled: bool = False) -> None:
    value = json.loads(pool_json(IPv4Network(cidr)))
    value["disabled"] = disabled
    etcd.put(f"/calico/v1/ipam/v4/pool/{cidr.replace('/', '-')}", json.dumps(value))


def block_key(block: IPv4Network) -> str:
    return f"{BLOCK_DIR}/{cidr_to_name(block)}"


def block_value(etcd, block: IPv4Network) -> Block:
    return Block.from_json(etcd.get_value(block_key(block)))


# -- Go's generator ------------------------------------------------------------------------------
def test_guide_hosts_start_where_real_calico_puts_them() -> None:
    # calico-2.6-facts.md (IPAM): node1 -> index 666 = 192.168.166.128/26 (workload-A),
    # node2 -> index 416 = 192.168.104.0/26 (workload-B), for 1024 blocks of 192.168.0.0/16.
    assert host_start_index("node1", 1024) == 666
    assert host_start_index("node2", 1024) == 416
    assert next(candidate_blocks(POOL, "node1")) == IPv4Network("192.168.166.128/26")
    assert next(candidate_blocks(POOL, "node2")) == IPv4Network("192.168.104.0/26")


def test_go_rand_known_values() -> None:
    # Go's documented first value for rand.NewSource(1), and FNV-1 test vectors (hash/fnv).
    source = GoRandSource(1)
    assert source.int63() == 5577006791947779410
    assert source.int63() == 8674665223082153551
    assert fnv1_32(b"") == 0x811C9DC5
    assert fnv1_32(b"a") == 0x050C5D7E  # FNV-1a would give 0xe40c292c


# The start index for real host names is checked against libcalico-go's own generator, run
# for real, in test_double_oracle_ipam.py (the oracle ipam-blocks.json, read from CALICOLAB_ORACLES).


def test_big_int_rand_rejects_draws_outside_the_limit() -> None:
    # 1024 has 11 bits: draws are masked to 11 bits and those >= 1024 are redrawn.
    source, replay = GoRandSource(fnv1_32(b"node1")), GoRandSource(fnv1_32(b"node1"))
    value = big_int_rand(source, 1024)
    draws = []
    while True:
        word = (replay.uint32() | replay.uint32() << 32) & 0x7FF
        draws.append(word)
        if word < 1024:
            break
    assert value == draws[-1]
    assert big_int_rand(GoRandSource(7), 0) == 0


# -- claiming ------------------------------------------------------------------------------------
def test_first_assignment_claims_the_hosts_block_affinity_first(etcd) -> None:
    add_pool(etcd, "192.168.0.0/16")
    writes: list[str] = []
    original = etcd.set

    def recording_set(key: str, value: str, **kwargs: object) -> object:
        writes.append(key)
        return original(key, value, **kwargs)

    etcd.set = recording_set
    ipam = Ipam(etcd, "node1")
    assert ipam.auto_assign() == [IPv4Address("192.168.166.128")]  # ordinal 0 first
    block = IPv4Network("192.168.166.128/26")
    affinity = f"{host_affinity_dir('node1')}/192.168.166.128-26"
    assert writes[:3] == [affinity, block_key(block), block_key(block)]  # affinity, create, assign
    assert etcd.get_value(affinity) == "{}"
    expected = ('{"cidr":"192.168.166.128/26","affinity":"host:node1","strictAffinity":false,'
                '"allocations":[0' + ",null" * 63 + '],"unallocated":[' + ",".join(map(str, range(1, 64)))
                + '],"attributes":[{"handle_id":null,"secondary":null}]}')
    assert etcd.get_value(block_key(block)) == expected
    assert ipam.auto_assign() == [IPv4Address("192.168.166.129")]
    assert ipam.own_blocks() == [block]


def test_walk_skips_existing_blocks_and_wraps_around(etcd) -> None:
    add_pool(etcd, "10.10.0.0/24")  # 4 blocks; node1 starts at index 2 (real Go, test above)
    assert host_start_index("node1", 4) == 2
    for index in (2, 3):
        taken = IPv4Network(f"10.10.0.{index * 64}/26")
        etcd.put(block_key(taken), Block.new(taken, "node2").to_json())
    assert Ipam(etcd, "node1").auto_assign() == [IPv4Address("10.10.0.0")]


def test_losing_the_block_race_fails_the_request_and_drops_our_affinity(etcd) -> None:
    add_pool(etcd, "192.168.0.0/16")
    wanted = IPv4Network("192.168.166.128/26")

    def rival_claims(key: str, args: dict) -> None:
        if key == block_key(wanted):
            etcd.put(key, Block.new(wanted, "node2").to_json())
        else:
            etcd.before_write = rival_claims  # wait for the block write

    etcd.before_write = rival_claims
    with pytest.raises(AffinityClaimed, match=r"192\.168\.166\.128/26 already claimed by host:node2"):
        Ipam(etcd, "node1").auto_assign()
    assert etcd.get_value(f"{host_affinity_dir('node1')}/192.168.166.128-26") is None
    assert block_value(etcd, wanted).affinity == "host:node2"


def test_assignment_retries_after_a_compare_and_swap_conflict(etcd) -> None:
    add_pool(etcd, "192.168.0.0/16")
    ipam = Ipam(etcd, "node1")
    [first] = ipam.auto_assign()
    block = IPv4Network(f"{first}/26", strict=False)

    def rival_assigns(_key: str, _args: dict) -> None:
        rival = block_value(etcd, block)
        rival.auto_assign(1, "node1", True)  # takes ordinal 1 behind our back
        etcd.put(block_key(block), rival.to_json())

    etcd.before_write = rival_assigns
    assert ipam.auto_assign() == [first + 2]
    assert block_value(etcd, block).in_use == 3  # nobody's allocation was lost


def test_full_block_moves_on_to_a_new_block(etcd) -> None:
    add_pool(etcd, "10.10.0.0/25")  # two blocks
    ipam = Ipam(etcd, "node1")
    ips = [ip for _ in range(65) for ip in ipam.auto_assign()]
    assert len(set(ips)) == 65
    assert {IPv4Network(f"{ip}/26", strict=False) for ip in ips} == set(ipam.own_blocks())
    assert len(ipam.own_blocks()) == 2


def test_no_free_block_borrows_from_another_hosts_block_then_runs_dry(etcd) -> None:
    add_pool(etcd, "10.10.0.0/26")  # one block, owned by node2
    theirs = IPv4Network("10.10.0.0/26")
    etcd.put(block_key(theirs), Block.new(theirs, "node2").to_json())
    node1 = Ipam(etcd, "node1")
    assert node1.auto_assign() == [IPv4Address("10.10.0.0")]  # non-strict affinity
    assert block_value(etcd, theirs).affinity == "host:node2"
    assert node1.own_blocks() == []
    for _ in range(63):
        assert len(node1.auto_assign()) == 1
    assert node1.auto_assign() == []  # AutoAssign's "no address": no error, an empty list


def test_strict_affinity_does_not_borrow(etcd) -> None:
    add_pool(etcd, "10.10.0.0/26")
    theirs = IPv4Network("10.10.0.0/26")
    etcd.put(block_key(theirs), Block.new(theirs, "node2").to_json())
    etcd.put("/calico/ipam/v2/config", '{"strict_affinity":true,"auto_allocate_blocks":true}')
    assert Ipam(etcd, "node1").auto_assign() == []


def test_pool_errors(etcd) -> None:
    with pytest.raises(IpamError, match="^No configured Calico pools$"):
        Ipam(etcd, "node1").auto_assign()
    add_pool(etcd, "192.168.0.0/16")
    ipam = Ipam(etcd, "node1")
    assert ipam.auto_assign(1, [POOL]) == [IPv4Address("192.168.166.128")]
    with pytest.raises(IpamError, match=r"^The given pool \(10\.0\.0\.0/24\) does not exist$"):
        Ipam(etcd, "node2").auto_assign(1, [IPv4Network("10.0.0.0/24")])
    add_pool(etcd, "10.9.0.0/16", disabled=True)
    with pytest.raises(IpamError, match="does not exist"):
        Ipam(etcd, "node2").auto_assign(1, [IPv4Network("10.9.0.0/16")])


def test_release_frees_the_address_once_and_drops_unused_attributes(etcd) -> None:
    add_pool(etcd, "192.168.0.0/16")
    ipam = Ipam(etcd, "node1")
    [ip] = ipam.auto_assign()
    [second] = ipam.auto_assign()
    assert ipam.release(ip) is True
    assert ipam.release(ip) is False
    block = block_value(etcd, IPv4Network(f"{ip}/26", strict=False))
    assert block.allocations[0] is None
    assert block.unallocated[-1] == 0  # a freed ordinal goes to the back, as in Calico
    assert block.attributes == [{"handle_id": None, "secondary": None}]
    assert ipam.release(second) is True
    block = block_value(etcd, IPv4Network(f"{ip}/26", strict=False))
    assert block.attributes == [] and block.affinity == "host:node1"  # kept: it has affinity
    assert ipam.release(IPv4Address("10.1.2.3")) is False  # no such block


def test_specific_address_claims_its_block_and_cannot_be_taken_twice(etcd) -> None:
    add_pool(etcd, "192.168.0.0/16")
    ipam = Ipam(etcd, "node1")
    ip = IPv4Address("192.168.50.70")
    ipam.assign_ip(ip)
    block = block_value(etcd, IPv4Network("192.168.50.64/26"))
    assert block.affinity == "host:node1" and block.allocations[6] == 0
    assert etcd.get_value(f"{host_affinity_dir('node1')}/192.168.50.64-26") == "{}"
    with pytest.raises(IpamError, match="^Address already assigned in block$"):
        ipam.assign_ip(ip)
    with pytest.raises(IpamError, match="^The provided IP address is not in a configured pool\n$"):
        ipam.assign_ip(IPv4Address("10.0.0.1"))


def test_reconcile_restores_missing_affinity_keys(etcd) -> None:
    block = IPv4Network("192.168.1.0/26")
    etcd.put(block_key(block), Block.new(block, "node1").to_json())
    ipam = Ipam(etcd, "node1")
    assert ipam.own_blocks() == []
    ipam.reconcile_affinities()
    assert ipam.own_blocks() == [block]
    assert Ipam(etcd, "node2").own_blocks() == []

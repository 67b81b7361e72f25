"""The double's block generator against libcalico-go f87d397's randomBlockGenerator, run for real.

Expected values: the oracle ipam-blocks.json (an input read from the folder CALICOLAB_ORACLES
names, see double_kit.oracles_dir; computed by the upstream Go code, see its `generator` and
`source` fields). Each case is one host name in one pool.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from itertools import islice

import pytest
from double_kit import oracle_case, oracle_params

from calico_double.agent.gorand import fnv1_32, host_start_index
from calico_double.agent.ipam import (
    BLOCK_DIR,
    BLOCK_PREFIX,
    Ipam,
    candidate_blocks,
    cidr_to_name,
    host_affinity_dir,
    pool_json,
)

CASES = oracle_params("ipam-blocks.json")


@pytest.mark.parametrize("case", CASES)
def test_block_walk_matches_libcalico_go(case: dict) -> None:
    case = oracle_case(case)
    pool = IPv4Network(case["pool"])
    assert case["block_prefix_len"] == BLOCK_PREFIX
    assert fnv1_32(case["host"].encode()) == case["fnv32_seed"]
    assert str(host_start_index(case["host"], pool.num_addresses >> (32 - BLOCK_PREFIX))) == case["start_block_index"]
    blocks = [str(b) for b in islice(candidate_blocks(pool, case["host"]), 3)]
    assert blocks[0] == case["start_block"]
    assert blocks == case["first_3_blocks"]


@pytest.mark.parametrize("case", CASES)
def test_first_address_and_keys_on_an_empty_datastore(case: dict, etcd) -> None:
    case = oracle_case(case)
    pool = IPv4Network(case["pool"])
    etcd.put(f"/calico/v1/ipam/v4/pool/{case['pool'].replace('/', '-')}", pool_json(pool))
    assert [str(ip) for ip in Ipam(etcd, case["host"]).auto_assign()] == [case["first_ip_on_empty_datastore"]]
    block = IPv4Network(case["start_block"])
    assert f"{BLOCK_DIR}/{cidr_to_name(block)}" == case["etcd_block_key"]
    assert f"{host_affinity_dir(case['host'])}/{cidr_to_name(block)}" == case["etcd_affinity_key"]
    assert etcd.get_value(case["etcd_block_key"]) is not None
    assert etcd.get_value(case["etcd_affinity_key"]) is not None

"""The double's Felix names and rule hashes against felix 2.6.0's own functions, run for real.

Expected values: the oracle felix-names.json (an input read from the folder CALICOLAB_ORACLES
names, see double_kit.oracles_dir): chain names, tag IP set names, and the static chains with
their `cali:` hashes, computed by felix 2.6.0's code (see its `generator` and `source` fields).
Each case is one test, named by the case.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from double_kit import oracle_case, oracle_params

from calico_double.agent.felix_model import Model, Settings, ipset_name, selector_set_id, tag_selector
from calico_double.agent.felix_rules import (
    FW_PREFIX,
    PI_PREFIX,
    PO_PREFIX,
    PRI_PREFIX,
    PRO_PREFIX,
    TW_PREFIX,
    Chain,
    endpoint_chain_name,
    policy_chain_name,
    profile_chain_name,
    render_tables,
)

CASES = oracle_params("felix-names.json")

NAMES: dict[str, Callable[[str], str]] = {
    "workload-to-endpoint-chain": lambda s: endpoint_chain_name(TW_PREFIX, s),
    "workload-from-endpoint-chain": lambda s: endpoint_chain_name(FW_PREFIX, s),
    "profile-inbound-chain": lambda s: profile_chain_name(PRI_PREFIX, s),
    "profile-outbound-chain": lambda s: profile_chain_name(PRO_PREFIX, s),
    "policy-inbound-chain": lambda s: policy_chain_name(PI_PREFIX, s),
    "policy-outbound-chain": lambda s: policy_chain_name(PO_PREFIX, s),
    "tag-selector-string": tag_selector,
    "tag-ipset-id": lambda s: selector_set_id(tag_selector(s)),
    "tag-ipset-name-v4": lambda s: ipset_name(selector_set_id(tag_selector(s))),
    "tag-ipset-temp-name-v4": lambda s: ipset_name(selector_set_id(tag_selector(s)), temp=True),
    "tag-ipset-name-v6": lambda s: ipset_name(selector_set_id(tag_selector(s)), ip_version=6),
    "fixed-ipset-name-v4": ipset_name,
}
# "calico-node-2.6.1-etcd (EndpointToHost RETURN, IPIP off)", "felix-defaults (...)", "any"
CONFIG = re.compile(r"^[\w.-]+ \(EndpointToHost (DROP|RETURN|ACCEPT), IPIP (on|off)\)$")


def settings_for(config: str) -> Settings:
    if config == "any":
        return Settings()
    found = CONFIG.match(config)
    assert found, f"oracle config {config!r} is not one this test knows how to set up"
    return Settings(default_endpoint_to_host_action=found[1], ipip_enabled=found[2] == "on")


def rendered(case: dict) -> dict[str, Chain]:
    """The double's chains of the case's table; kernel-chain inserts as felix hashes them: a
    one-rule chain named like the kernel chain."""
    assert case["ip_version"] == 4, "the double renders IPv4 tables only"
    table = render_tables(Model(settings=settings_for(case["config"]), hostname="node1"))[case["table"]]
    if case["kind"] == "kernel-chain-insert":
        return {name: Chain(name, rules) for name, rules in table.inserts.items()}
    return table.chains


@pytest.mark.parametrize("case", CASES)
def test_felix_names_and_hashes(case: dict) -> None:
    case = oracle_case(case)
    kind = case["kind"]
    if kind in NAMES:
        assert NAMES[kind](case["input"]) == case["output"]
        return
    assert kind in ("static-chains", "kernel-chain-insert"), f"oracle kind {kind!r} is new to this test"
    chains = rendered(case)
    for want in case["chains"]:
        chain = chains[want["name"]]
        assert chain.hashes() == want["hashes"], want["name"]
        assert chain.lines() == want["rules_as_rendered_by_felix"], want["name"]


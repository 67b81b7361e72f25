"""The double's felix, model -> iptables/IP set text, checked against felix 2.6.0's semantics.

Expected values come from upstream: rule hashes real felix writes (projectcalico/felix@2.6.0
iptables/rules_test.go uses cali:wUHhoiAYhphO9Mso for the FORWARD jump; a public iptables-save
of a Calico/Docker host shows the others), chain layout from rules/static.go, endpoints.go,
dispatch.go, policy.go, nat.go, and libnetwork-plugin v1.1.0's profile JSON.
"""

from __future__ import annotations

import json

from calico_double.agent.felix_dataplane import (
    SavedIpset,
    SavedTable,
    ipset_restore_text,
    parse_save,
    restore_text,
    stale_ipsets,
)
from calico_double.agent.felix_model import (
    ipset_name,
    model_from_kvs,
    selector_set_id,
    settings_from,
)
from calico_double.agent.felix_rules import Chain, render_tables
from calico_double.agent.felix_rules import desired_ipsets as ipsets_for


def endpoint(host: str, eid: str, ip: str, net: str, state: str = "active") -> tuple[str, str]:
    return (f"/calico/v1/host/{host}/workload/libnetwork/libnetwork/endpoint/{eid}",
            json.dumps({"state": state, "name": "cali" + eid[:11], "mac": "ee:ee:ee:ee:ee:ee",
                        "profile_ids": [net], "ipv4_nets": [f"{ip}/32"], "ipv6_nets": []}))


def profile(net: str, rules: dict | None = None) -> list[tuple[str, str]]:
    rules = rules or {"inbound_rules": [{"action": "allow", "src_tag": net}], "outbound_rules": [{"action": "allow"}]}
    return [(f"/calico/v1/policy/profile/{net}/rules", json.dumps(rules)),
            (f"/calico/v1/policy/profile/{net}/tags", json.dumps([net])),
            (f"/calico/v1/policy/profile/{net}/labels", "{}")]


def pool(cidr: str, masquerade: bool) -> tuple[str, str]:
    return (f"/calico/v1/ipam/v4/pool/{cidr.replace('/', '-')}",
            json.dumps({"cidr": cidr, "ipip": "", "ipip_mode": "", "masquerade": masquerade, "ipam": True,
                        "disabled": False}))


BASE = [("/calico/v1/Ready", "true"), ("/calico/v1/host/node1/config/DefaultEndpointToHostAction", "RETURN")]
A = endpoint("node1", "a1a1a1a1a1a1a1a1", "192.168.166.128", "net1")
B = endpoint("node1", "b2b2b2b2b2b2b2b2", "192.168.166.129", "net2")
REMOTE = endpoint("node2", "c3c3c3c3c3c3c3c3", "192.168.104.0", "net1")


def model(*extra, host: str = "node1", env: dict | None = None):
    return model_from_kvs([*BASE, *extra], host, env)


def chain_lines(tables, table: str, name: str) -> list[str]:
    return tables[table].chains[name].lines()


def test_static_chains_hash_like_real_felix() -> None:
    tables = render_tables(model())
    text = restore_text(tables["filter"], SavedTable())
    assert text is not None
    assert '-I FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso" --jump cali-FORWARD' in text
    assert '-I INPUT -m comment --comment "cali:Cz_u1IQiXIMmKD4c" --jump cali-INPUT' in text
    assert '-I OUTPUT -m comment --comment "cali:tVnHkvAo15HuiPy0" --jump cali-OUTPUT' in text
    forward = chain_lines(tables, "filter", "cali-FORWARD")
    assert forward[0] == ('-A cali-FORWARD -m comment --comment "cali:X3vB2lGcBrfkYquC" '
                          '--in-interface cali+ --jump cali-from-wl-dispatch')
    # The same host's dump shows cali-INPUT and cali-OUTPUT rule for rule (host -> local workload
    # RETURNs out of cali-OUTPUT: not policed).
    assert tables["filter"].chains["cali-OUTPUT"].hashes() == [
        "YQSSJIsRcHjFbXaI", "KRjBsKsBcFBYKCEw", "3VKAQBcyUUW5kS_j", "Z1mBCSH1XHM6qq0k", "N0jyWt2RfBedKw3L"]
    assert tables["filter"].chains["cali-INPUT"].hashes() == [
        "i7okJZpS8VxaJB3n", "JaoDb6CLdcGw8g0Y", "c5eKVW2VdKQ_LiSM", "hwQKYSlSCkpE_9uN", "ttp8-serzKCP-bKZ"]
    # With no local endpoint the dispatch chains only drop ("Unknown interface").
    assert chain_lines(tables, "filter", "cali-from-wl-dispatch") == [
        '-A cali-from-wl-dispatch -m comment --comment "cali:zTj6P0TIgYvgz-md" '
        '-m comment --comment "Unknown interface" --jump DROP']
    accept = render_tables(model(("/calico/v1/host/node1/config/DefaultEndpointToHostAction", "ACCEPT")))
    assert chain_lines(accept, "filter", "cali-wl-to-host")[1].startswith(
        '-A cali-wl-to-host -m comment --comment "cali:nSZbcOoG1xPONxb8"')


def test_default_endpoint_to_host_action_sources() -> None:
    # Upstream default DROP (config_params.go); calico/node stores RETURN per host; env wins.
    assert settings_from({}, {}, {}).default_endpoint_to_host_action == "DROP"
    assert model().settings.default_endpoint_to_host_action == "RETURN"
    env = {"FELIX_DEFAULTENDPOINTTOHOSTACTION": "ACCEPT"}
    assert model(env=env).settings.default_endpoint_to_host_action == "ACCEPT"
    assert settings_from({"DefaultEndpointToHostAction": "bogus"}, {}, {}).default_endpoint_to_host_action == "DROP"
    assert settings_from({"IptablesRefreshInterval": "5"}, {}, {}).iptables_refresh_interval == 5
    wl_to_host = render_tables(model())["filter"].chains["cali-wl-to-host"].rules
    assert [r.action for r in wl_to_host] == ["--jump cali-from-wl-dispatch", "--jump RETURN"]


def test_profile_inbound_accepts_only_its_own_tag_set() -> None:
    m = model(A, B, REMOTE, *profile("net1"), *profile("net2"))
    tables = render_tables(m)
    net1_set = ipset_name(selector_set_id("has(net1)"))
    assert net1_set.startswith("cali4-s:") and len(net1_set) == 31
    pri = tables["filter"].chains["cali-pri-net1"].rules
    assert [(r.match, r.action) for r in pri] == [
        ((f"-m set --match-set {net1_set} src",), "--jump MARK --set-mark 0x1000000/0x1000000"),
        (("-m mark --mark 0x1000000/0x1000000",), "--jump RETURN")]
    # The to-endpoint chain: established back in, then the profile, else dropped.
    tw = tables["filter"].chains["cali-tw-calia1a1a1a1a1a"].rules
    assert tw[0].match == ("-m conntrack --ctstate RELATED,ESTABLISHED",) and tw[0].action == "--jump ACCEPT"
    assert tw[3].action == "--jump cali-pri-net1"
    assert tw[-1].action == "--jump DROP" and tw[-1].comment == "Drop if no profiles matched"
    # Members: every host's net1 endpoints (node2's too), not net2's.
    sets = ipsets_for(m)
    assert sets[net1_set] == ("hash:ip", frozenset({"192.168.166.128", "192.168.104.0"}))
    assert "192.168.166.129" not in sets[net1_set][1]
    # Outbound: allow all.
    pro = tables["filter"].chains["cali-pro-net1"].rules
    assert [(r.match, r.action) for r in pro] == [
        ((), "--jump MARK --set-mark 0x1000000/0x1000000"), (("-m mark --mark 0x1000000/0x1000000",), "--jump RETURN")]


def test_only_local_endpoints_get_chains_and_dispatch() -> None:
    tables = render_tables(model(A, REMOTE, *profile("net1")))
    names = set(tables["filter"].chains)
    assert "cali-tw-calia1a1a1a1a1a" in names and "cali-fw-calia1a1a1a1a1a" in names
    assert not any("c3c3c3" in n for n in names)
    dispatch = tables["filter"].chains["cali-to-wl-dispatch"].rules
    assert [(r.match, r.action) for r in dispatch[:-1]] == [
        (("--out-interface calia1a1a1a1a1a",), "--goto cali-tw-calia1a1a1a1a1a")]


def test_dispatch_tree_and_long_names_follow_upstream() -> None:
    two = [endpoint("node1", f"ab{i}ab{i}ab{i}ab{i}", f"192.168.166.{130 + i}", "net1") for i in range(2)]
    single = endpoint("node1", "zzzzzzzzzzzzzzzz", "192.168.166.140", "net1")
    tables = render_tables(model(*two, single, *profile("net1")))
    root = tables["filter"].chains["cali-from-wl-dispatch"].rules
    # Names sharing "caliab" after the common "cali" go to a child chain named by the next char.
    assert [r.action for r in root] == [
        "--goto cali-from-wl-dispatch-a", "--goto cali-fw-calizzzzzzzzzzz", "--jump DROP"]
    child = tables["filter"].chains["cali-from-wl-dispatch-a"].rules
    assert child[-1].comment == "Unknown interface"
    name = "a-very-long-profile-name-for-a-network"
    long = render_tables(model(*profile(name), endpoint("node1", "e" * 16, "192.168.166.150", name)))
    pri = [n for n in long["filter"].chains if n.startswith("cali-pri-")]
    assert pri and all(len(n) <= 28 and n.startswith("cali-pri-_") for n in pri)


def test_masquerade_only_for_masquerade_pools_to_outside_all_pools() -> None:
    none = render_tables(model(pool("10.10.0.0/16", False)))
    assert none["nat"].chains["cali-nat-outgoing"].rules == ()
    m = model(pool("192.168.0.0/16", True), pool("10.10.0.0/16", False))
    rules = render_tables(m)["nat"].chains["cali-nat-outgoing"].rules
    assert [(r.match, r.action) for r in rules] == [
        (("-m set --match-set cali4-masq-ipam-pools src", "-m set ! --match-set cali4-all-ipam-pools dst"),
         "--jump MASQUERADE")]
    sets = ipsets_for(m)
    assert sets["cali4-all-ipam-pools"] == ("hash:net", frozenset({"192.168.0.0/16", "10.10.0.0/16"}))
    assert sets["cali4-masq-ipam-pools"] == ("hash:net", frozenset({"192.168.0.0/16"}))
    post = render_tables(m)["nat"].chains["cali-POSTROUTING"].rules
    assert [r.action for r in post] == ["--jump cali-fip-snat", "--jump cali-nat-outgoing"]


def test_missing_or_unsupported_profile_drops_everything() -> None:
    # active_rules_calculator.go DummyDropRules.
    tables = render_tables(model(A))
    assert [r.action for r in tables["filter"].chains["cali-pri-net1"].rules] == ["--jump DROP"]
    selector_rules = {"inbound_rules": [{"action": "allow", "src_selector": "x == 'y'"}]}
    bad = render_tables(model(A, *profile("net1", selector_rules)))
    assert [r.action for r in bad["filter"].chains["cali-pri-net1"].rules] == ["--jump DROP"]


def test_admin_down_endpoint_drops_all() -> None:
    down = endpoint("node1", "d4d4d4d4d4d4d4d4", "192.168.166.160", "net1", state="inactive")
    chain = render_tables(model(down, *profile("net1")))["filter"].chains["cali-tw-calid4d4d4d4d4d"]
    assert [(r.action, r.comment) for r in chain.rules] == [("--jump DROP", "Endpoint admin disabled")]


def test_rule_fields_render_as_felix_does() -> None:
    rules = {"inbound_rules": [
        {"action": "deny", "protocol": "tcp", "src_net": "10.0.0.0/8", "dst_ports": [80, "8000:8080"]},
        {"action": "allow", "protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "!src_tag": "bad"},
        {"action": "log", "protocol": "udp", "src_nets": ["10.1.0.0/16", "10.2.0.0/16"]},
        {"action": "next-tier", "dst_tag": "net1", "ip_version": 6},
    ], "outbound_rules": []}
    chain = render_tables(model(A, *profile("net1", rules)))["filter"].chains["cali-pri-net1"]
    rendered = [" ".join((*r.match, r.action)) for r in chain.rules]
    bad = ipset_name(selector_set_id("has(bad)"))
    assert rendered[0] == ("-p tcp --source 10.0.0.0/8 -m multiport --destination-ports 80,8000:8080 --jump DROP")
    assert rendered[1] == (f"-p icmp -m icmp --icmp-type 8/0 -m set ! --match-set {bad} src "
                           "--jump MARK --set-mark 0x1000000/0x1000000")
    assert rendered[2] == "-m mark --mark 0x1000000/0x1000000 --jump RETURN"
    # Two source CIDRs do not fit one rule: a block sets scratch bit 0x4000000 (rules/policy.go).
    assert rendered[3:6] == ["--jump MARK --set-mark 0x0/0xc000000",
                             "--source 10.1.0.0/16 --jump MARK --set-mark 0x4000000/0x4000000",
                             "--source 10.2.0.0/16 --jump MARK --set-mark 0x4000000/0x4000000"]
    assert rendered[6] == ('-p udp -m mark --mark 0x4000000/0x4000000 '
                           '--jump LOG --log-prefix "calico-packet: " --log-level 5')
    assert len(rendered) == 7, "the ip_version 6 rule is not rendered for IPv4"


def test_restore_is_a_no_op_when_in_sync_and_leaves_docker_alone() -> None:
    spec = render_tables(model(A, *profile("net1")))["filter"]
    first = restore_text(spec, SavedTable())
    assert first is not None
    # What iptables-save prints after that restore, with Docker's rules around ours.
    saved_text = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n"
    for line in first.splitlines():
        if line.startswith(":cali"):
            saved_text += line.replace(" - -", " - [0:0]") + "\n"
    for line in first.splitlines():
        if line.startswith(("-A ", "-I ")):
            saved_text += "-A " + line[3:] + "\n"
    saved_text += "-A FORWARD -j DOCKER\n-A FORWARD -o docker0 -j ACCEPT\nCOMMIT\n"
    saved = parse_save(saved_text, "filter")
    assert restore_text(spec, saved) is None
    # Docker re-inserted its jump above ours: ours are removed and put back on top, Docker's stay.
    moved = SavedTable({**saved.chains, "FORWARD": ["", saved.chains["FORWARD"][0], ""]})
    text = restore_text(spec, moved)
    assert text is not None
    assert "-D FORWARD 2" in text and "-D FORWARD 1" not in text and "-D FORWARD 3" not in text
    assert '-I FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso"' in text
    # A chain left over from a removed endpoint is flushed and deleted; Docker's chains are not.
    stale = SavedTable({**saved.chains, "cali-tw-caliold": ["x"], "DOCKER": [""]})
    text = restore_text(spec, stale)
    assert text is not None and ":cali-tw-caliold - -" in text and "--delete-chain cali-tw-caliold" in text
    assert "DOCKER" not in text


def test_ipsets_rewrite_by_swap_only_when_changed() -> None:
    desired = {"cali4-s:abc": ("hash:ip", frozenset({"10.0.0.1"}))}
    same = {"cali4-s:abc": SavedIpset("hash:ip", 1048576, {"10.0.0.1"})}
    assert ipset_restore_text(desired, same, 1048576) is None
    text = ipset_restore_text(desired, {"cali4-s:abc": SavedIpset("hash:ip", 1048576, {"10.0.0.9"})}, 1048576)
    assert text == ("create cali4ts:abc hash:ip family inet maxelem 1048576\nadd cali4ts:abc 10.0.0.1\n"
                    "swap cali4-s:abc cali4ts:abc\ndestroy cali4ts:abc\n")
    saved = {"cali4-s:old": SavedIpset("hash:ip", 1, set()), "docker-set": SavedIpset("hash:ip", 1, set())}
    assert stale_ipsets(desired, saved) == ["cali4-s:old"]


def test_chain_hashes_chain_through_position() -> None:
    # iptables/rules_test.go: same rule, same position -> same hash; other chain -> other hash.
    from calico_double.agent.felix_rules import IptRule

    r1, r2 = IptRule(("-m foobar --foobar baz",), "--jump biff"), IptRule(("-m foobar --foobar baz",), "--jump boff")
    assert Chain("chain", (r1,)).hashes()[0] == Chain("chain", (r1, r2)).hashes()[0]
    assert Chain("chain", (r1,)).hashes() != Chain("chain2", (r1,)).hashes()
    assert Chain("chain", (r2,)).hashes()[0] != Chain("chain", (r1, r2)).hashes()[1]

"""Felix 2.6.0's iptables rules, rendered from a Model (pure functions, no I/O).

Chain names, rule order, mark bits and the `cali:<hash>` comments follow projectcalico/felix
2.6.0: rules/static.go (static chains), rules/endpoints.go (cali-tw-*/cali-fw-*),
rules/dispatch.go (dispatch chains), rules/policy.go (profile rules), rules/nat.go
(cali-nat-outgoing), iptables/rules.go and iptables/actions.go/match_builder.go (text and
hashes). Only the IPv4 tables are rendered; host endpoints and tiered policies are not
modelled, so their dispatch chains stay empty as on a felix with none configured.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from .felix_model import (
    IPSET_ALL_POOLS,
    IPSET_MASQ_POOLS,
    Model,
    PortRange,
    Profile,
    Rule,
    Settings,
    WorkloadEndpoint,
    ipset_name,
)

MAX_CHAIN_NAME = 28
HASH_LENGTH = 16
HASH_PREFIX = "cali:"
CHAIN_PREFIX = "cali-"
# Chain prefixes felix owns (rules/rule_defs.go AllHistoricChainNamePrefixes): stale chains with
# these names are removed, and inserted jumps to them are ours.
OWNED_CHAIN_PREFIXES = ("cali-", "califw-", "calitw-", "califh-", "calith-", "calipi-", "calipo-", "felix-")

FILTER_INPUT = "cali-INPUT"
FILTER_FORWARD = "cali-FORWARD"
FILTER_OUTPUT = "cali-OUTPUT"
FAILSAFE_IN = "cali-failsafe-in"
FAILSAFE_OUT = "cali-failsafe-out"
WL_TO_HOST = "cali-wl-to-host"
FROM_WL_DISPATCH = "cali-from-wl-dispatch"
TO_WL_DISPATCH = "cali-to-wl-dispatch"
FROM_HOST_DISPATCH = "cali-from-host-endpoint"
TO_HOST_DISPATCH = "cali-to-host-endpoint"
NAT_PREROUTING = "cali-PREROUTING"
NAT_POSTROUTING = "cali-POSTROUTING"
NAT_OUTPUT = "cali-OUTPUT"
NAT_OUTGOING = "cali-nat-outgoing"
FIP_DNAT = "cali-fip-dnat"
FIP_SNAT = "cali-fip-snat"
RAW_PREROUTING = "cali-PREROUTING"
RAW_OUTPUT = "cali-OUTPUT"
MANGLE_PREROUTING = "cali-PREROUTING"
TW_PREFIX = "cali-tw-"
FW_PREFIX = "cali-fw-"
PRI_PREFIX = "cali-pri-"
PRO_PREFIX = "cali-pro-"
PI_PREFIX = "cali-pi-"  # policies are not modelled; their names are (rules/rule_defs.go)
PO_PREFIX = "cali-po-"
IPSET_ALL_HOSTS = "all-hosts"
IPIP_TUNNEL = "tunl0"


# -- rule text --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IptRule:
    match: tuple[str, ...] = ()
    action: str = ""
    comment: str = ""

    def render(self, verb: str, chain: str, prefix_fragment: str = "") -> str:
        parts = [verb, chain]
        if prefix_fragment:
            parts.append(prefix_fragment)
        if self.comment:
            parts.append(f'-m comment --comment "{self.comment}"')
        if self.match:
            parts.append(" ".join(self.match))
        if self.action:
            parts.append(self.action)
        return " ".join(parts)


@dataclass(frozen=True)
class Chain:
    name: str
    rules: tuple[IptRule, ...] = ()

    def hashes(self) -> list[str]:
        """iptables/rules.go RuleHashes: SHA-224 chained from the chain name through each rule."""
        digest = hashlib.sha224(self.name.encode()).digest()
        found = []
        for rule in self.rules:
            h = hashlib.sha224()
            h.update(digest)
            h.update(rule.render("-A", self.name, "HASH").encode())
            digest = h.digest()
            found.append(base64.urlsafe_b64encode(digest).decode().rstrip("=")[:HASH_LENGTH])
        return found

    def lines(self) -> list[str]:
        return [rule.render("-A", self.name, comment_fragment(h))
                for rule, h in zip(self.rules, self.hashes(), strict=True)]


def comment_fragment(rule_hash: str) -> str:
    return f'-m comment --comment "{HASH_PREFIX}{rule_hash}"'


@dataclass
class TableSpec:
    """What felix wants in one table: its chains and the rules it puts in the kernel's chains."""

    name: str
    chains: dict[str, Chain] = field(default_factory=dict)
    inserts: dict[str, tuple[IptRule, ...]] = field(default_factory=dict)
    insert_mode: str = "insert"

    def add(self, *chains: Chain) -> None:
        for chain in chains:
            self.chains[chain.name] = chain


# actions (iptables/actions.go)
def jump(target: str) -> str:
    return f"--jump {target}"


def goto(target: str) -> str:
    return f"--goto {target}"


ACCEPT = "--jump ACCEPT"
DROP = "--jump DROP"
RETURN = "--jump RETURN"
MASQUERADE = "--jump MASQUERADE"


def set_mark(mark: int, mask: int | None = None) -> str:
    return f"--jump MARK --set-mark {mark:#x}/{(mark if mask is None else mask):#x}"


def clear_mark(mark: int) -> str:
    return f"--jump MARK --set-mark 0/{mark:#x}"


def log_action(prefix: str) -> str:
    return f'--jump LOG --log-prefix "{prefix}: " --log-level 5'


# matches (iptables/match_builder.go)
def mark_set(mark: int) -> str:
    return f"-m mark --mark {mark:#x}/{mark:#x}"


def mark_clear(mark: int) -> str:
    return f"-m mark --mark 0/{mark:#x}"


def in_iface(name: str) -> str:
    return f"--in-interface {name}"


def out_iface(name: str) -> str:
    return f"--out-interface {name}"


def ports_text(ports: Sequence[PortRange]) -> str:
    return ",".join(p.render() for p in ports)


def length_limited(prefix: str, suffix: str, max_len: int = MAX_CHAIN_NAME) -> str:
    """hashutils.GetLengthLimitedID: prefix + suffix, or prefix + '_' + sha256 when too long."""
    total = len(prefix) + len(suffix)
    if total > max_len or (total == max_len and suffix.startswith("_")):
        digest = base64.urlsafe_b64encode(hashlib.sha256(suffix.encode()).digest()).decode().rstrip("=")
        return prefix + "_" + digest[: max_len - 1 - len(prefix)]
    return prefix + suffix


def endpoint_chain_name(prefix: str, iface: str) -> str:
    return length_limited(prefix, iface)


def profile_chain_name(prefix: str, profile: str) -> str:
    return length_limited(prefix, profile)


def policy_chain_name(prefix: str, policy: str) -> str:
    return length_limited(prefix, policy)


# -- renderer ---------------------------------------------------------------------------------------
class Renderer:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.mark_accept, self.mark_pass, self.mark_scratch0, self.mark_scratch1 = settings.marks()
        self.all_marks = self.mark_accept | self.mark_pass | self.mark_scratch0 | self.mark_scratch1
        self.filter_allow = RETURN if settings.iptables_filter_allow_action == "RETURN" else ACCEPT
        self.mangle_allow = RETURN if settings.iptables_mangle_allow_action == "RETURN" else ACCEPT
        # rules/rule_defs.go NewRenderer: anything but DROP/ACCEPT means RETURN to INPUT.
        action = settings.default_endpoint_to_host_action
        self.endpoint_to_host = {"DROP": DROP, "ACCEPT": ACCEPT}.get(action, RETURN)

    # static filter chains (rules/static.go)
    def filter_forward(self) -> Chain:
        rules: list[IptRule] = []
        for prefix in self.s.interface_prefixes:
            rules += [IptRule((in_iface(prefix + "+"),), jump(FROM_WL_DISPATCH)),
                      IptRule((out_iface(prefix + "+"),), jump(TO_WL_DISPATCH))]
        for prefix in self.s.interface_prefixes:
            rules += [IptRule((in_iface(prefix + "+"),), ACCEPT),
                      IptRule((out_iface(prefix + "+"),), ACCEPT)]
        rules += [
            IptRule((), clear_mark(self.all_marks & ~self.mark_accept)),
            IptRule((mark_clear(self.mark_accept),), jump(FROM_HOST_DISPATCH)),
            IptRule((), jump(TO_HOST_DISPATCH)),
            IptRule((mark_set(self.mark_accept),), self.filter_allow, "Host endpoint policy accepted packet."),
        ]
        return Chain(FILTER_FORWARD, tuple(rules))

    def filter_input(self) -> Chain:
        rules = [IptRule((mark_set(self.mark_accept),), ACCEPT)]
        if self.s.ipip_enabled:
            rules.append(IptRule(("-p 4", f"-m set ! --match-set {ipset_name(IPSET_ALL_HOSTS)} src"), DROP,
                                 "Drop IPIP packets from non-Calico hosts"))
        for prefix in self.s.interface_prefixes:
            rules.append(IptRule((in_iface(prefix + "+"),), goto(WL_TO_HOST)))
        rules += [
            IptRule((), clear_mark(self.all_marks)),
            IptRule((), jump(FROM_HOST_DISPATCH)),
            IptRule((mark_set(self.mark_accept),), self.filter_allow, "Host endpoint policy accepted packet."),
        ]
        return Chain(FILTER_INPUT, tuple(rules))

    def workload_to_host(self) -> Chain:
        return Chain(WL_TO_HOST, (
            IptRule((), jump(FROM_WL_DISPATCH)),
            IptRule((), self.endpoint_to_host, "Configured DefaultEndpointToHostAction"),
        ))

    def filter_output(self) -> Chain:
        # Host -> local workload is not policed (rules/static.go filterOutputChain).
        rules = [IptRule((mark_set(self.mark_accept),), ACCEPT)]
        for prefix in self.s.interface_prefixes:
            rules.append(IptRule((out_iface(prefix + "+"),), RETURN))
        rules += [
            IptRule((), clear_mark(self.all_marks)),
            IptRule((), jump(TO_HOST_DISPATCH)),
            IptRule((mark_set(self.mark_accept),), self.filter_allow, "Host endpoint policy accepted packet."),
        ]
        return Chain(FILTER_OUTPUT, tuple(rules))

    def failsafe(self, name: str, ports: Sequence) -> Chain:
        return Chain(name, tuple(
            IptRule((f"-p {p.protocol}", f"-m multiport --destination-ports {p.port}"), ACCEPT) for p in ports))

    # endpoints (rules/endpoints.go, chainTypeNormal, no policies)
    def endpoint_chain(self, prefix: str, profile_prefix: str, endpoint: WorkloadEndpoint) -> Chain:
        name = endpoint_chain_name(prefix, endpoint.name)
        if not endpoint.admin_up:
            return Chain(name, (IptRule((), DROP, "Endpoint admin disabled"),))
        rules = [IptRule(("-m conntrack --ctstate RELATED,ESTABLISHED",), ACCEPT)]
        if not self.s.disable_conntrack_invalid_check:
            rules.append(IptRule(("-m conntrack --ctstate INVALID",), DROP))
        rules.append(IptRule((), clear_mark(self.mark_accept)))
        for pid in endpoint.profile_ids:
            rules += [IptRule((), jump(profile_chain_name(profile_prefix, pid))),
                      IptRule((mark_set(self.mark_accept),), RETURN, "Return if profile accepted")]
        rules.append(IptRule((), DROP, "Drop if no profiles matched"))
        return Chain(name, tuple(rules))

    def dispatch_chains(self, names: list[str]) -> list[Chain]:
        """rules/dispatch.go: a shallow tree keyed on the character after the common prefix."""
        names = sorted(set(names))
        common = _common_prefix(names)
        groups: dict[str, list[str]] = {}
        for name in names:
            key = name[: len(common) + 1] if len(name) > len(common) else common
            groups.setdefault(key, []).append(name)
        root_from: list[IptRule] = []
        root_to: list[IptRule] = []
        children: list[Chain] = []
        unknown = IptRule((), DROP, "Unknown interface")
        for key, members in groups.items():
            if len(members) > 1:
                child_from = f"{FROM_WL_DISPATCH}-{key[len(common):]}"
                child_to = f"{TO_WL_DISPATCH}-{key[len(common):]}"
                root_from.append(IptRule((in_iface(key + "+"),), goto(child_from)))
                root_to.append(IptRule((out_iface(key + "+"),), goto(child_to)))
                children.append(Chain(child_from, tuple(
                    [IptRule((in_iface(n),), goto(endpoint_chain_name(FW_PREFIX, n))) for n in members] + [unknown])))
                children.append(Chain(child_to, tuple(
                    [IptRule((out_iface(n),), goto(endpoint_chain_name(TW_PREFIX, n))) for n in members] + [unknown])))
            else:
                n = members[0]
                root_from.append(IptRule((in_iface(n),), goto(endpoint_chain_name(FW_PREFIX, n))))
                root_to.append(IptRule((out_iface(n),), goto(endpoint_chain_name(TW_PREFIX, n))))
        return [*children, Chain(FROM_WL_DISPATCH, (*root_from, unknown)), Chain(TO_WL_DISPATCH, (*root_to, unknown))]

    # profiles (rules/policy.go)
    def profile_chains(self, profile: Profile) -> list[Chain]:
        return [Chain(profile_chain_name(PRI_PREFIX, profile.name), self.rules_for(profile.inbound)),
                Chain(profile_chain_name(PRO_PREFIX, profile.name), self.rules_for(profile.outbound))]

    def rules_for(self, rules: Sequence[Rule]) -> tuple[IptRule, ...]:
        out: list[IptRule] = []
        for rule in rules:
            out += self.rule(rule)
        return tuple(out)

    def rule(self, r: Rule) -> list[IptRule]:
        if r.ip_version not in (None, 4):
            return []
        src = [n for n in r.src_nets if ":" not in n]
        dst = [n for n in r.dst_nets if ":" not in n]
        not_src = [n for n in r.not_src_nets if ":" not in n]
        not_dst = [n for n in r.not_dst_nets if ":" not in n]
        # A rule whose every CIDR of one field is IPv6 says nothing for IPv4 (filterNets).
        for wanted, given in ((src, r.src_nets), (dst, r.dst_nets), (not_src, r.not_src_nets),
                              (not_dst, r.not_dst_nets)):
            if given and not wanted:
                return []
        out: list[IptRule] = []
        all_pass, this_pass = self.mark_scratch0, self.mark_scratch1
        using_blocks = False
        # iptables takes one source and one destination per rule: extra CIDRs go in blocks of
        # rules that leave their verdict in a scratch mark bit.
        if len(src) + len(not_src) > 1 or len(dst) + len(not_dst) > 1:
            using_blocks = True
            initial = all_pass if len(src) <= 1 and len(dst) <= 1 else 0
            out.append(IptRule((), set_mark(initial, all_pass | this_pass)))
            done_first = False

            def positive(cidrs: list[str], flag: str) -> None:
                nonlocal done_first
                target = this_pass if done_first else all_pass
                for cidr in cidrs:
                    out.append(IptRule((f"{flag} {cidr}",), set_mark(target)))
                if done_first:
                    out.append(IptRule((mark_clear(this_pass),), clear_mark(all_pass)))
                done_first = True

            num_src, num_dst = len(src) + len(not_src), len(dst) + len(not_dst)
            if len(src) > 1:
                positive(src, "--source")
                src = []
            if len(dst) > 1:
                positive(dst, "--destination")
                dst = []
            if not_src and num_src > 1:
                out += [IptRule((f"--source {c}",), clear_mark(all_pass)) for c in not_src]
                not_src = []
            if not_dst and num_dst > 1:
                out += [IptRule((f"--destination {c}",), clear_mark(all_pass)) for c in not_dst]
                not_dst = []
        for src_ports in split_ports(r.src_ports):
            for dst_ports in split_ports(r.dst_ports):
                match = self.rule_match(r, src, dst, not_src, not_dst, src_ports, dst_ports)
                if using_blocks:
                    match.append(mark_set(all_pass))
                mark, actions = self.rule_actions(r)
                if mark:
                    out.append(IptRule(tuple(match), set_mark(mark)))
                    match = [mark_set(mark)]
                out += [IptRule(tuple(match), a) for a in actions]
        return out

    def rule_match(self, r: Rule, src: list[str], dst: list[str], not_src: list[str], not_dst: list[str],
                   src_ports: list[PortRange], dst_ports: list[PortRange]) -> list[str]:
        m: list[str] = []
        if r.protocol:
            m.append(f"-p {r.protocol}")
        if src:
            m.append(f"--source {src[0]}")
        m += [f"-m set --match-set {ipset_name(i)} src" for i in r.src_set_ids]
        if src_ports:
            m.append(f"-m multiport --source-ports {ports_text(src_ports)}")
        if dst:
            m.append(f"--destination {dst[0]}")
        m += [f"-m set --match-set {ipset_name(i)} dst" for i in r.dst_set_ids]
        if dst_ports:
            m.append(f"-m multiport --destination-ports {ports_text(dst_ports)}")
        if r.icmp_type is not None:
            code = f"/{r.icmp_code}" if r.icmp_code is not None else ""
            m.append(f"-m icmp --icmp-type {r.icmp_type}{code}")
        if r.not_protocol:
            m.append(f"! -p {r.not_protocol}")
        if not_src:
            m.append(f"! --source {not_src[0]}")
        m += [f"-m set ! --match-set {ipset_name(i)} src" for i in r.not_src_set_ids]
        if r.not_src_ports:
            m += [f"-m multiport ! --source-ports {ports_text(p)}" for p in split_ports(r.not_src_ports)]
        if not_dst:
            m.append(f"! --destination {not_dst[0]}")
        m += [f"-m set ! --match-set {ipset_name(i)} dst" for i in r.not_dst_set_ids]
        if r.not_dst_ports:
            m += [f"-m multiport ! --destination-ports {ports_text(p)}" for p in split_ports(r.not_dst_ports)]
        if r.not_icmp_type is not None:
            code = f"/{r.not_icmp_code}" if r.not_icmp_code is not None else ""
            m.append(f"-m icmp ! --icmp-type {r.not_icmp_type}{code}")
        return m

    def rule_actions(self, r: Rule) -> tuple[int, list[str]]:
        if r.action == "allow":
            return self.mark_accept, [RETURN]
        if r.action in ("next-tier", "pass"):
            return self.mark_pass, [RETURN]
        if r.action == "deny":
            return 0, [DROP]
        return 0, [log_action(self.s.log_prefix)]

    # nat (rules/static.go, rules/nat.go)
    def nat_outgoing(self, active: bool) -> Chain:
        if not active:
            return Chain(NAT_OUTGOING)
        return Chain(NAT_OUTGOING, (IptRule((
            f"-m set --match-set {ipset_name(IPSET_MASQ_POOLS)} src",
            f"-m set ! --match-set {ipset_name(IPSET_ALL_POOLS)} dst"), MASQUERADE),))

    def nat_postrouting(self) -> Chain:
        rules = [IptRule((), jump(FIP_SNAT)), IptRule((), jump(NAT_OUTGOING))]
        if self.s.ipip_enabled:
            # Traffic leaving by the tunnel with a non-local source takes the tunnel's address.
            rules.append(IptRule((out_iface(IPIP_TUNNEL), "-m addrtype ! --src-type LOCAL --limit-iface-out",
                                  "-m addrtype --src-type LOCAL"), MASQUERADE))
        return Chain(NAT_POSTROUTING, tuple(rules))

    # raw and mangle (rules/static.go); no host endpoints, so their dispatch chains are empty
    def raw_prerouting(self) -> Chain:
        rules = [IptRule((), clear_mark(self.all_marks))]
        for prefix in self.s.interface_prefixes:
            rules.append(IptRule((in_iface(prefix + "+"),), set_mark(self.mark_scratch0)))
        rules += [IptRule((mark_clear(self.mark_scratch0),), jump(FROM_HOST_DISPATCH)),
                  IptRule((mark_set(self.mark_accept),), ACCEPT)]
        return Chain(RAW_PREROUTING, tuple(rules))

    def raw_output(self) -> Chain:
        return Chain(RAW_OUTPUT, (IptRule((), clear_mark(self.all_marks)),
                                  IptRule((), jump(TO_HOST_DISPATCH)),
                                  IptRule((mark_set(self.mark_accept),), ACCEPT)))

    def mangle_prerouting(self) -> Chain:
        rules = [IptRule(("-m conntrack --ctstate RELATED,ESTABLISHED",), self.mangle_allow),
                 IptRule((mark_set(self.mark_accept),), self.mangle_allow)]
        for prefix in self.s.interface_prefixes:
            rules.append(IptRule((in_iface(prefix + "+"),), self.mangle_allow))
        rules += [IptRule((), jump(FROM_HOST_DISPATCH)),
                  IptRule((mark_set(self.mark_accept),), self.mangle_allow, "Host endpoint policy accepted packet.")]
        return Chain(MANGLE_PREROUTING, tuple(rules))


def _common_prefix(names: list[str]) -> str:
    if not names:
        return ""
    first, last = min(names), max(names)
    i = 0
    while i < len(first) and i < len(last) and first[i] == last[i]:
        i += 1
    return first[:i]


def split_ports(ports: Sequence[PortRange]) -> list[list[PortRange]]:
    """rules/policy.go SplitPortList: multiport takes 15 slots, a range uses two."""
    splits: list[list[PortRange]] = [[]]
    free = 15
    for p in ports:
        need = 1 if p.first == p.last else 2
        if free < need:
            splits.append([])
            free = 15
        splits[-1].append(p)
        free -= need
    return splits


def render_tables(model: Model) -> dict[str, TableSpec]:
    """The four IPv4 tables felix 2.6.0 programs, for this host's part of the model."""
    s = model.settings
    r = Renderer(s)
    mode = s.chain_insert_mode
    local = model.local_endpoints()

    filt = TableSpec("filter", insert_mode=mode)
    filt.add(r.filter_forward(), r.filter_input(), r.workload_to_host(),
             r.failsafe(FAILSAFE_IN, s.failsafe_inbound_host_ports), r.filter_output(),
             r.failsafe(FAILSAFE_OUT, s.failsafe_outbound_host_ports),
             Chain(FROM_HOST_DISPATCH), Chain(TO_HOST_DISPATCH))
    filt.add(*r.dispatch_chains([e.name for e in local]))
    for endpoint in local:
        filt.add(r.endpoint_chain(TW_PREFIX, PRI_PREFIX, endpoint),
                 r.endpoint_chain(FW_PREFIX, PRO_PREFIX, endpoint))
    for profile in model.active_profiles():
        filt.add(*r.profile_chains(profile))
    filt.inserts = {"FORWARD": (IptRule((), jump(FILTER_FORWARD)),),
                    "INPUT": (IptRule((), jump(FILTER_INPUT)),),
                    "OUTPUT": (IptRule((), jump(FILTER_OUTPUT)),)}

    nat = TableSpec("nat", insert_mode=mode)
    nat.add(Chain(NAT_PREROUTING, (IptRule((), jump(FIP_DNAT)),)),
            r.nat_postrouting(),
            Chain(NAT_OUTPUT, (IptRule((), jump(FIP_DNAT)),)),
            Chain(FIP_DNAT), Chain(FIP_SNAT),
            r.nat_outgoing(any(p.masquerade for p in model.pools)))
    nat.inserts = {"PREROUTING": (IptRule((), jump(NAT_PREROUTING)),),
                   "POSTROUTING": (IptRule((), jump(NAT_POSTROUTING)),),
                   "OUTPUT": (IptRule((), jump(NAT_OUTPUT)),)}

    raw = TableSpec("raw", insert_mode=mode)
    raw.add(r.failsafe(FAILSAFE_IN, s.failsafe_inbound_host_ports),
            r.failsafe(FAILSAFE_OUT, s.failsafe_outbound_host_ports),
            r.raw_prerouting(), r.raw_output(), Chain(FROM_HOST_DISPATCH), Chain(TO_HOST_DISPATCH))
    raw.inserts = {"PREROUTING": (IptRule((), jump(RAW_PREROUTING)),),
                   "OUTPUT": (IptRule((), jump(RAW_OUTPUT)),)}

    mangle = TableSpec("mangle", insert_mode=mode)
    mangle.add(r.failsafe(FAILSAFE_IN, s.failsafe_inbound_host_ports), r.mangle_prerouting(),
               Chain(FROM_HOST_DISPATCH))
    mangle.inserts = {"PREROUTING": (IptRule((), jump(MANGLE_PREROUTING)),)}
    return {t.name: t for t in (filt, nat, raw, mangle)}


def desired_ipsets(model: Model) -> dict[str, tuple[str, frozenset[str]]]:
    """IP set name -> (type, members): the pool sets (masq_mgr.go) and one per active tag."""
    sets = {
        ipset_name(IPSET_ALL_POOLS): ("hash:net", frozenset(p.cidr for p in model.pools)),
        ipset_name(IPSET_MASQ_POOLS): ("hash:net", frozenset(p.cidr for p in model.pools if p.masquerade)),
    }
    for set_id, members in model.active_ipsets().items():
        sets[ipset_name(set_id)] = ("hash:ip", frozenset(members))
    return sets

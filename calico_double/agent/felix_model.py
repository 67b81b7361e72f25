"""What felix knows: Calico 2.6's etcd v1 data model, parsed into plain values.

Pure functions only (no I/O): `model_from_kvs` turns the keys below /calico/v1 into a `Model`,
which the rule renderer (felix_rules) and the dataplane planner (felix_dataplane) consume.
Key layout and JSON field names are libcalico-go v1.7.1's (lib/backend/model/*.go), which
felix 2.6.0 pins.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, ip_network

log = logging.getLogger(__name__)

ROOT = "/calico/v1"

# IP set names (felix 2.6.0 ipsets/ipset_defs.go): "cali" + IP version, then "-" for the
# live set and "t" for the temporary one used to swap in a rewrite; at most 31 characters.
IPSET_MAIN_PREFIX = "cali4-"
IPSET_TEMP_PREFIX = "cali4t"
IPSET_MAX_NAME = 31
IPSET_ALL_POOLS = "all-ipam-pools"
IPSET_MASQ_POOLS = "masq-ipam-pools"

ENDPOINT_KEY = re.compile(r"^/calico/v1/host/([^/]+)/workload/([^/]+)/([^/]+)/endpoint/([^/]+)$")
HOST_CONFIG_KEY = re.compile(r"^/calico/v1/host/([^/]+)/config/([^/]+)$")
GLOBAL_CONFIG_KEY = re.compile(r"^/calico/v1/config/([^/]+)$")
PROFILE_KEY = re.compile(r"^/calico/v1/policy/profile/([^/]+)/(rules|tags|labels)$")
POOL_KEY = re.compile(r"^/calico/v1/ipam/v4/pool/([^/]+)$")

ACTIONS = {"allow", "deny", "log", "next-tier", "pass"}
PROTOCOL_NAMES = {"tcp", "udp", "icmp", "icmpv6", "sctp", "udplite"}


class ModelError(ValueError):
    """A value in etcd felix would reject (it skips that object and logs why)."""


# -- IP set naming ---------------------------------------------------------------------------------
def tag_selector(tag: str) -> str:
    # calc/rule_scanner.go selFromTag: a tag is matched as the label selector has(<tag>).
    return f"has({tag})"


def selector_set_id(selector: str) -> str:
    """libcalico-go lib/hash MakeUniqueID("s", selector): 's:' + base64url(sha224('s:' + sel))."""
    digest = hashlib.sha224(f"s:{selector}".encode()).digest()
    return "s:" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def ipset_name(set_id: str, temp: bool = False, ip_version: int = 4) -> str:
    """ipsets/ipset_defs.go NameForMainIPSet/NameForTempIPSet: cali<v>- or cali<v>t, cut to 31.

    The double programs IPv4 only; the IPv6 names are here so the naming is checked whole."""
    prefix = IPSET_TEMP_PREFIX if temp else IPSET_MAIN_PREFIX
    return (prefix.replace("4", str(ip_version), 1) + set_id)[:IPSET_MAX_NAME]


# -- rules -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PortRange:
    first: int
    last: int

    def render(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}:{self.last}"


@dataclass(frozen=True)
class Rule:
    """One profile rule after felix's conversion: tags became IP set ids, nets are lists."""

    action: str = "allow"
    ip_version: int | None = None
    protocol: str | None = None  # a name ("tcp") or a number as text ("47")
    not_protocol: str | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    not_icmp_type: int | None = None
    not_icmp_code: int | None = None
    src_nets: tuple[str, ...] = ()
    dst_nets: tuple[str, ...] = ()
    not_src_nets: tuple[str, ...] = ()
    not_dst_nets: tuple[str, ...] = ()
    src_set_ids: tuple[str, ...] = ()
    dst_set_ids: tuple[str, ...] = ()
    not_src_set_ids: tuple[str, ...] = ()
    not_dst_set_ids: tuple[str, ...] = ()
    src_ports: tuple[PortRange, ...] = ()
    dst_ports: tuple[PortRange, ...] = ()
    not_src_ports: tuple[PortRange, ...] = ()
    not_dst_ports: tuple[PortRange, ...] = ()

    def set_ids(self) -> tuple[str, ...]:
        return self.src_set_ids + self.dst_set_ids + self.not_src_set_ids + self.not_dst_set_ids


@dataclass(frozen=True)
class Profile:
    name: str
    inbound: tuple[Rule, ...] = ()
    outbound: tuple[Rule, ...] = ()
    tags: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    # selector set id -> tag, for the tags this profile's rules refer to
    selectors: tuple[tuple[str, str], ...] = ()


# calc/active_rules_calculator.go DummyDropRules: a local endpoint's profile that is missing
# (or invalid) is rendered as "deny everything" in both directions.
def dummy_drop_profile(name: str) -> Profile:
    return Profile(name=name, inbound=(Rule(action="deny"),), outbound=(Rule(action="deny"),))


@dataclass(frozen=True)
class WorkloadEndpoint:
    host: str
    orchestrator: str
    workload: str
    endpoint_id: str
    name: str  # host-side interface, e.g. cali0123456789a
    state: str = "active"
    mac: str | None = None
    profile_ids: tuple[str, ...] = ()
    ipv4_nets: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def admin_up(self) -> bool:
        return self.state == "active"

    def ipv4_addresses(self) -> list[str]:
        return [n.split("/", 1)[0] for n in self.ipv4_nets]


@dataclass(frozen=True)
class Pool:
    cidr: str
    masquerade: bool = False
    disabled: bool = False


@dataclass(frozen=True)
class ProtoPort:
    protocol: str
    port: int


@dataclass(frozen=True)
class Settings:
    """The felix configuration parameters the double honours, with felix 2.6.0's defaults
    (config/config_params.go)."""

    default_endpoint_to_host_action: str = "DROP"
    interface_prefixes: tuple[str, ...] = ("cali",)
    iptables_refresh_interval: float = 90.0
    route_refresh_interval: float = 90.0
    ipsets_refresh_interval: float = 10.0
    iptables_mark_mask: int = 0xFF000000
    log_prefix: str = "calico-packet"
    chain_insert_mode: str = "insert"
    iptables_filter_allow_action: str = "ACCEPT"
    iptables_mangle_allow_action: str = "ACCEPT"
    disable_conntrack_invalid_check: bool = False
    # IpInIpEnabled: rendered as felix does, but never read from etcd or the environment, since
    # the double's startup refuses IPIP pools (no tunl0, no all-hosts IP set).
    ipip_enabled: bool = False
    ignore_loose_rpf: bool = False
    max_ipset_size: int = 1048576
    failsafe_inbound_host_ports: tuple[ProtoPort, ...] = (ProtoPort("tcp", 22), ProtoPort("udp", 68))
    failsafe_outbound_host_ports: tuple[ProtoPort, ...] = (
        ProtoPort("tcp", 2379), ProtoPort("tcp", 2380), ProtoPort("tcp", 4001),
        ProtoPort("tcp", 7001), ProtoPort("udp", 53), ProtoPort("udp", 67),
    )

    def marks(self) -> tuple[int, int, int, int]:
        """accept, pass, scratch0, scratch1: the mask's lowest bits in order (NthIPTablesMark)."""
        bits = [1 << s for s in range(32) if self.iptables_mark_mask & (1 << s)]
        if len(bits) < 4:
            raise ModelError(f"IptablesMarkMask {self.iptables_mark_mask:#x} has fewer than 4 bits")
        return bits[0], bits[1], bits[2], bits[3]


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError("negative")
    return value


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in {"true", "1", "yes", "y", "t"}:
        return True
    if low in {"false", "0", "no", "n", "f"}:
        return False
    raise ValueError(text)


def _oneof(*choices: str):
    def parse(text: str) -> str:
        up = text.strip().upper() if choices[0].isupper() else text.strip().lower()
        if up not in choices:
            raise ValueError(f"not one of {', '.join(choices)}")
        return up
    return parse


def _ports(text: str) -> tuple[ProtoPort, ...]:
    found = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        proto, _, port = part.partition(":")
        if proto.lower() not in {"tcp", "udp"} or not port.isdigit():
            raise ValueError(part)
        found.append(ProtoPort(proto.lower(), int(port)))
    return tuple(found)


def _prefixes(text: str) -> tuple[str, ...]:
    found = tuple(p.strip() for p in text.split(",") if p.strip())
    if not found or not all(re.fullmatch(r"[a-zA-Z0-9_.-]+", p) for p in found):
        raise ValueError(text)
    return found


# name as stored in etcd / FELIX_<NAME> -> (Settings field, parser)
SETTING_PARSERS = {
    "DefaultEndpointToHostAction": ("default_endpoint_to_host_action", _oneof("DROP", "RETURN", "ACCEPT")),
    "InterfacePrefix": ("interface_prefixes", _prefixes),
    "IptablesRefreshInterval": ("iptables_refresh_interval", _seconds),
    "RouteRefreshInterval": ("route_refresh_interval", _seconds),
    "IpsetsRefreshInterval": ("ipsets_refresh_interval", _seconds),
    "IptablesMarkMask": ("iptables_mark_mask", lambda t: int(t, 0)),
    "LogPrefix": ("log_prefix", str),
    "ChainInsertMode": ("chain_insert_mode", _oneof("insert", "append")),
    "IptablesFilterAllowAction": ("iptables_filter_allow_action", _oneof("ACCEPT", "RETURN")),
    "IptablesMangleAllowAction": ("iptables_mangle_allow_action", _oneof("ACCEPT", "RETURN")),
    "DisableConntrackInvalidCheck": ("disable_conntrack_invalid_check", _bool),
    "IgnoreLooseRPF": ("ignore_loose_rpf", _bool),
    "MaxIpsetSize": ("max_ipset_size", int),
    "FailsafeInboundHostPorts": ("failsafe_inbound_host_ports", _ports),
    "FailsafeOutboundHostPorts": ("failsafe_outbound_host_ports", _ports),
}


def settings_from(global_cfg: Mapping[str, str], host_cfg: Mapping[str, str],
                  env: Mapping[str, str]) -> Settings:
    """Merge as felix does: defaults < /calico/v1/config < /calico/v1/host/<h>/config < FELIX_* env.

    An unparsable value is logged and ignored (the lower-priority value stays).
    """
    values: dict[str, object] = {}
    env_upper = {k.upper(): v for k, v in env.items()}
    for source, raw in (("global config", global_cfg), ("host config", host_cfg),
                        ("environment", {n: env_upper[f"FELIX_{n.upper()}"] for n in SETTING_PARSERS
                                         if f"FELIX_{n.upper()}" in env_upper})):
        for name, text in raw.items():
            if name not in SETTING_PARSERS:
                continue
            attr, parse = SETTING_PARSERS[name]
            try:
                values[attr] = parse(text)
            except (ValueError, TypeError) as exc:
                log.warning("Ignoring invalid config value %s=%r from %s (%s)", name, text, source, exc)
    return Settings(**values)  # type: ignore[arg-type]


# -- parsing etcd values ---------------------------------------------------------------------------
def _net(text: object) -> str:
    if not isinstance(text, str):
        raise ModelError(f"not a CIDR: {text!r}")
    try:
        return str(ip_network(text, strict=False))
    except ValueError as exc:
        raise ModelError(f"not a CIDR: {text!r}") from exc


def _port_list(value: object) -> tuple[PortRange, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ModelError(f"ports must be a list: {value!r}")
    found = []
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool):
            first = last = item
        elif isinstance(item, str) and re.fullmatch(r"\d+(:\d+)?", item):
            a, _, b = item.partition(":")
            first, last = int(a), int(b or a)
        else:
            # Named ports arrived in later Calico versions; 2.6 rejects them.
            raise ModelError(f"unsupported port {item!r}")
        if not (0 <= first <= last <= 65535):
            raise ModelError(f"bad port range {item!r}")
        found.append(PortRange(first, last))
    return tuple(found)


def _protocol(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 255:
        return str(value)
    if isinstance(value, str) and value.lower() in PROTOCOL_NAMES:
        return value.lower()
    raise ModelError(f"unsupported protocol {value!r}")


def _int_or_none(value: object, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
        raise ModelError(f"bad {name} {value!r}")
    return value


def parse_rule(data: object) -> tuple[Rule, dict[str, str]]:
    """One v1 rule -> (Rule, {set id: tag}); ModelError for what felix 2.6 would not render."""
    if not isinstance(data, dict):
        raise ModelError(f"rule is not an object: {data!r}")
    action = data.get("action") or "allow"
    if action not in ACTIONS:
        raise ModelError(f"unknown action {action!r}")
    for key in ("src_selector", "dst_selector", "!src_selector", "!dst_selector"):
        if data.get(key):
            # Label selectors need libcalico-go's selector grammar; the double implements tags only.
            raise ModelError(f"{key} is not implemented by the Calico double")
    tags: dict[str, str] = {}

    def tag_ids(key: str) -> tuple[str, ...]:
        tag = data.get(key)
        if not tag:
            return ()
        if not isinstance(tag, str) or not re.fullmatch(r"[a-zA-Z0-9_.-]+", tag):
            raise ModelError(f"bad {key} {tag!r}")
        set_id = selector_set_id(tag_selector(tag))
        tags[set_id] = tag
        return (set_id,)

    def nets(single: str, many: str) -> tuple[str, ...]:
        found = []
        if data.get(single):
            found.append(_net(data[single]))
        for item in data.get(many) or []:
            found.append(_net(item))
        return tuple(found)

    ip_version = data.get("ip_version")
    if ip_version not in (None, 4, 6):
        raise ModelError(f"bad ip_version {ip_version!r}")
    rule = Rule(
        action=action,
        ip_version=ip_version,
        protocol=_protocol(data.get("protocol")),
        not_protocol=_protocol(data.get("!protocol")),
        icmp_type=_int_or_none(data.get("icmp_type"), "icmp_type"),
        icmp_code=_int_or_none(data.get("icmp_code"), "icmp_code"),
        not_icmp_type=_int_or_none(data.get("!icmp_type"), "!icmp_type"),
        not_icmp_code=_int_or_none(data.get("!icmp_code"), "!icmp_code"),
        src_nets=nets("src_net", "src_nets"),
        dst_nets=nets("dst_net", "dst_nets"),
        not_src_nets=nets("!src_net", "!src_nets"),
        not_dst_nets=nets("!dst_net", "!dst_nets"),
        src_set_ids=tag_ids("src_tag"),
        dst_set_ids=tag_ids("dst_tag"),
        not_src_set_ids=tag_ids("!src_tag"),
        not_dst_set_ids=tag_ids("!dst_tag"),
        src_ports=_port_list(data.get("src_ports")),
        dst_ports=_port_list(data.get("dst_ports")),
        not_src_ports=_port_list(data.get("!src_ports")),
        not_dst_ports=_port_list(data.get("!dst_ports")),
    )
    return rule, tags


def parse_profile(name: str, rules_json: str | None, tags_json: str | None,
                  labels_json: str | None) -> Profile:
    """Raises ModelError when felix would treat the profile as invalid."""
    try:
        rules = json.loads(rules_json) if rules_json else {}
        tags = json.loads(tags_json) if tags_json else []
        labels = json.loads(labels_json) if labels_json else {}
    except ValueError as exc:
        raise ModelError(f"profile {name}: bad JSON ({exc})") from exc
    if not isinstance(rules, dict) or not isinstance(tags, list) or not isinstance(labels, dict):
        raise ModelError(f"profile {name}: unexpected JSON shape")
    selectors: dict[str, str] = {}
    parsed: dict[str, list[Rule]] = {"inbound_rules": [], "outbound_rules": []}
    for direction in parsed:
        for item in rules.get(direction) or []:
            rule, tag_map = parse_rule(item)
            parsed[direction].append(rule)
            selectors.update(tag_map)
    return Profile(
        name=name,
        inbound=tuple(parsed["inbound_rules"]),
        outbound=tuple(parsed["outbound_rules"]),
        tags=tuple(str(t) for t in tags),
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        selectors=tuple(sorted(selectors.items())),
    )


def parse_endpoint(host: str, orch: str, workload: str, endpoint_id: str, value: str) -> WorkloadEndpoint:
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise ModelError(f"endpoint {endpoint_id}: bad JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        raise ModelError(f"endpoint {endpoint_id}: no interface name")
    nets = []
    for item in data.get("ipv4_nets") or []:
        net = _net(item)
        if not isinstance(ip_network(net), IPv4Network):
            raise ModelError(f"endpoint {endpoint_id}: {item!r} in ipv4_nets is not IPv4")
        nets.append(net)
    labels = data.get("labels") or {}
    return WorkloadEndpoint(
        host=host, orchestrator=orch, workload=workload, endpoint_id=endpoint_id,
        name=data["name"], state=str(data.get("state") or ""),
        mac=data.get("mac") or None,
        profile_ids=tuple(str(p) for p in data.get("profile_ids") or []),
        ipv4_nets=tuple(nets),
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())) if isinstance(labels, dict) else (),
    )


def parse_pool(value: str) -> Pool:
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise ModelError(f"pool: bad JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelError("pool: not an object")
    return Pool(cidr=_net(data.get("cidr")), masquerade=bool(data.get("masquerade")),
                disabled=bool(data.get("disabled")))


# -- the model -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Model:
    hostname: str
    ready: bool = False
    settings: Settings = field(default_factory=Settings)
    endpoints: tuple[WorkloadEndpoint, ...] = ()  # every host's: IP sets span the cluster
    profiles: tuple[Profile, ...] = ()  # valid ones only
    pools: tuple[Pool, ...] = ()
    global_config: tuple[tuple[str, str], ...] = ()
    host_config: tuple[tuple[str, str], ...] = ()

    def local_endpoints(self) -> list[WorkloadEndpoint]:
        return sorted((e for e in self.endpoints if e.host == self.hostname), key=lambda e: e.name)

    def profile(self, name: str) -> Profile | None:
        for prof in self.profiles:
            if prof.name == name:
                return prof
        return None

    def active_profiles(self) -> list[Profile]:
        """Profiles of local endpoints (only those get chains), missing ones as dummy drop."""
        names = sorted({p for e in self.local_endpoints() for p in e.profile_ids})
        return [self.profile(n) or dummy_drop_profile(n) for n in names]

    def endpoint_labels(self, endpoint: WorkloadEndpoint) -> dict[str, str]:
        # labelindex InheritIndex: profile tags become labels "<tag>": "", profile labels next,
        # the endpoint's own labels win.
        labels: dict[str, str] = {}
        for pid in endpoint.profile_ids:
            prof = self.profile(pid)
            if prof is None:
                continue
            for tag in prof.tags:
                labels.setdefault(tag, "")
            for key, value in prof.labels:
                labels[key] = value
        labels.update(dict(endpoint.labels))
        return labels

    def active_ipsets(self) -> dict[str, set[str]]:
        """IP set id -> member IPs, for every tag the active profiles' rules use."""
        wanted: dict[str, str] = {}
        for prof in self.active_profiles():
            wanted.update(dict(prof.selectors))
        members: dict[str, set[str]] = {set_id: set() for set_id in wanted}
        for endpoint in self.endpoints:
            labels = self.endpoint_labels(endpoint)
            for set_id, tag in wanted.items():
                if tag in labels:  # has(<tag>)
                    members[set_id].update(endpoint.ipv4_addresses())
        return members


def model_from_kvs(kvs: Iterable[tuple[str, str]], hostname: str,
                   env: Mapping[str, str] | None = None) -> Model:
    """Build the model from (key, value) pairs below /calico/v1; bad objects are logged, skipped."""
    ready = False
    global_cfg: dict[str, str] = {}
    host_cfg: dict[str, str] = {}
    endpoints: list[WorkloadEndpoint] = []
    profile_parts: dict[str, dict[str, str]] = {}
    pools: list[Pool] = []
    for key, value in kvs:
        if key == f"{ROOT}/Ready":
            ready = value.strip().lower() == "true"
        elif m := GLOBAL_CONFIG_KEY.match(key):
            global_cfg[m.group(1)] = value
        elif m := HOST_CONFIG_KEY.match(key):
            if m.group(1) == hostname:
                host_cfg[m.group(2)] = value
        elif m := ENDPOINT_KEY.match(key):
            try:
                endpoints.append(parse_endpoint(*m.groups(), value))
            except ModelError as exc:
                log.warning("Skipping workload endpoint %s: %s", key, exc)
        elif m := PROFILE_KEY.match(key):
            profile_parts.setdefault(m.group(1), {})[m.group(2)] = value
        elif POOL_KEY.match(key):
            try:
                pools.append(parse_pool(value))
            except ModelError as exc:
                log.warning("Skipping IP pool %s: %s", key, exc)
    profiles = []
    for name, parts in sorted(profile_parts.items()):
        try:
            profiles.append(parse_profile(name, parts.get("rules"), parts.get("tags"), parts.get("labels")))
        except ModelError as exc:
            log.warning("Profile %s is invalid, endpoints using it drop all traffic: %s", name, exc)
    return Model(
        hostname=hostname,
        ready=ready,
        settings=settings_from(global_cfg, host_cfg, env or {}),
        endpoints=tuple(sorted(endpoints, key=lambda e: (e.host, e.name, e.endpoint_id))),
        profiles=tuple(profiles),
        pools=tuple(sorted(pools, key=lambda p: p.cidr)),
        global_config=tuple(sorted(global_cfg.items())),
        host_config=tuple(sorted(host_cfg.items())),
    )

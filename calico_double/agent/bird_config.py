"""BIRD 1.6 configuration for the node-to-node mesh, shaped like calico/node 2.6's confd output.

The files calico/node v2.6.1 renders into /etc/calico/confd/config (templates in
projectcalico/calico@v2.6.1:calico_node/filesystem/etc/calico/confd/templates): bird.cfg
(kernel/device/direct protocols, the BGP template, one `Mesh_a_b_c_d` per other node in
host-name order), bird_aggr.cfg (a blackhole per block affine to this host and the
aggregation function), bird_ipam.cfg (the pool export filter and `calico_ipip`),
custom_filters.cfg, and the same four for bird6; global and node-specific peers become
`Global_a_b_c_d`/`Node_a_b_c_d` protocols as the template renders them. BGP timers are BIRD's defaults, as in
the templates. Debian's BIRD lacks Calico's `krt_tunnel` attribute, so `calico_ipip`
chooses no tunnel (the pools have IPIP off, as in the guide).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path

from .etcd import EtcdClient
from .ipam import POOL_DIR, Pool, host_affinity_dir, name_to_cidr
from .registration import BGP_GLOBAL, BGP_HOSTS, DEFAULT_AS

log = logging.getLogger(__name__)

POOL_DIR_V6 = "/calico/v1/ipam/v6/pool"
CUSTOM_FILTERS = f"{BGP_GLOBAL}/custom_filters"


@dataclass(frozen=True)
class Peer:
    node: str
    ip: IPv4Address | IPv6Address
    as_num: int


@dataclass(frozen=True)
class ExtraPeer:
    """A global (/global/peer_v4/<ip>) or node-specific (/host/<node>/peer_v4/<ip>) BGP peer,
    as the template reads it: the confd key, and the stored JSON's ip and as_num as text."""

    key: str
    ip: str
    as_num: str


@dataclass(frozen=True)
class BirdInputs:
    node: str
    router_id: IPv4Address
    as_num: int
    mesh_enabled: bool
    peers: tuple[Peer, ...]
    own_blocks: tuple[IPv4Network, ...]
    pools: tuple[IPv4Network, ...]
    log_level: str = "info"
    custom_filters: tuple[str, ...] = ()
    ip6: IPv6Address | None = None
    peers6: tuple[Peer, ...] = ()
    own_blocks6: tuple[IPv6Network, ...] = ()
    pools6: tuple[IPv6Network, ...] = ()
    custom_filters6: tuple[str, ...] = ()
    global_peers: tuple[ExtraPeer, ...] = ()
    node_peers: tuple[ExtraPeer, ...] = ()
    global_peers6: tuple[ExtraPeer, ...] = ()
    node_peers6: tuple[ExtraPeer, ...] = ()


def protocol_name(kind: str, ip: IPv4Address | IPv6Address) -> str:
    """Mesh_192_168_223_130: calicoctl reads the peer type and address back from this name."""
    sep = "." if ip.version == 4 else ":"
    return f"{kind}_{'_'.join(str(ip).split(sep))}"


def _int_or(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def _filters(etcd: EtcdClient, family: str) -> tuple[str, ...]:
    return tuple(leaf.value or "" for leaf in sorted(etcd.leaves(f"{CUSTOM_FILTERS}/{family}"),
                                                   key=lambda n: n.key))


def _blocks(etcd: EtcdClient, node: str, family: str) -> list:
    blocks = []
    for child in etcd.children(host_affinity_dir(node).replace("/ipv4/", f"/{family}/")):
        try:
            blocks.append(ip_network(child.name.replace("-", "/")) if family == "ipv6"
                          else name_to_cidr(child.name))
        except ValueError:
            continue
    return blocks


def _pools(etcd: EtcdClient, folder: str) -> list:
    pools = []
    for child in etcd.children(folder):
        try:
            if folder == POOL_DIR:
                pools.append(Pool.from_json(child.value or "").cidr)
            else:
                pools.append(ip_network(json.loads(child.value or "{}")["cidr"]))
        except (ValueError, KeyError, TypeError):
            continue
    return pools


def _extra_peers(etcd: EtcdClient, folder: str) -> tuple[ExtraPeer, ...]:
    """confd's `gets "<folder>/*"`: every key below, in key order, value parsed as JSON."""
    found = []
    for leaf in sorted(etcd.leaves(folder), key=lambda n: n.key):
        try:
            data = json.loads(leaf.value or "")
            found.append(ExtraPeer(leaf.key.removeprefix("/calico/bgp/v1"), str(data["ip"]),
                                   str(data["as_num"])))
        except (ValueError, KeyError, TypeError):
            log.warning("Ignoring BGP peer %s with an unreadable value %r", leaf.key, leaf.value)
    return tuple(found)


def gather_inputs(etcd: EtcdClient, node: str, router_id: IPv4Address) -> BirdInputs:
    """Read everything the templates depend on from etcd."""
    global_as = _int_or(etcd.get_value(f"{BGP_GLOBAL}/as_num"), DEFAULT_AS)
    try:
        mesh = json.loads(etcd.get_value(f"{BGP_GLOBAL}/node_mesh") or '{"enabled": true}')
        mesh_enabled = bool(mesh.get("enabled", True))
    except ValueError:
        mesh_enabled = True
    hosts: dict[str, dict[str, str]] = {}
    for leaf in etcd.leaves(BGP_HOSTS):
        parts = leaf.key[len(BGP_HOSTS):].strip("/").split("/")
        if len(parts) == 2:
            hosts.setdefault(parts[0], {})[parts[1]] = leaf.value or ""
    own = hosts.get(node, {})
    own_as = _int_or(own.get("as_num"), global_as)
    ip6: IPv6Address | None = None
    try:
        ip6 = IPv6Address(own.get("ip_addr_v6", "").split("/")[0]) if own.get("ip_addr_v6") else None
    except ValueError:
        ip6 = None
    peers: list[Peer] = []
    peers6: list[Peer] = []
    for name, keys in sorted(hosts.items()):  # confd's lsdir: host-name order
        for field_name, out, skip in (("ip_addr_v4", peers, router_id), ("ip_addr_v6", peers6, ip6)):
            text = keys.get(field_name, "").split("/")[0]
            if not text:
                continue
            try:
                ip = ip_address(text)
            except ValueError:
                log.warning("Node %s has an invalid %s %r", name, field_name, text)
                continue
            if ip == skip:  # the templates skip this node by address, not by name
                continue
            out.append(Peer(name, ip, _int_or(keys.get("as_num"), global_as)))
    return BirdInputs(
        node=node,
        router_id=router_id,
        as_num=own_as,
        mesh_enabled=mesh_enabled,
        peers=tuple(peers),
        own_blocks=tuple(sorted(_blocks(etcd, node, "ipv4"))),
        pools=tuple(sorted(_pools(etcd, POOL_DIR))),
        # The template's LOGGING: this host's loglevel, else the global one, compared as stored.
        log_level=own.get("loglevel", etcd.get_value(f"{BGP_GLOBAL}/loglevel") or "info"),
        custom_filters=_filters(etcd, "v4"),
        ip6=ip6,
        peers6=tuple(peers6),
        own_blocks6=tuple(sorted(_blocks(etcd, node, "ipv6"))),
        pools6=tuple(sorted(_pools(etcd, POOL_DIR_V6))),
        custom_filters6=_filters(etcd, "v6"),
        global_peers=_extra_peers(etcd, f"{BGP_GLOBAL}/peer_v4"),
        node_peers=_extra_peers(etcd, f"{BGP_HOSTS}/{node}/peer_v4"),
        global_peers6=_extra_peers(etcd, f"{BGP_GLOBAL}/peer_v6"),
        node_peers6=_extra_peers(etcd, f"{BGP_HOSTS}/{node}/peer_v6"),
    )


def _debug(level: str) -> str:
    if level == "debug":
        return "  debug all;\n"
    if level == "none":
        return ""
    return "  debug { states };\n"


def _render_aggr(blocks: tuple) -> str:
    lines = ["# Generated by confd (the Calico double)",
             "# ------------- Static black hole addresses -------------"]
    if blocks:
        lines.append("protocol static {")
        lines += [f"   route {block} blackhole;" for block in blocks]
        lines.append("}")
    else:
        lines.append("# No static routes configured.")
    lines += ["", "# Aggregation of routes on this host; export the block, nothing beneath it.",
              "function calico_aggr ()", "{"]
    for block in blocks:
        lines.append(f"  if ( net = {block} ) then {{ accept; }}")
        lines.append(f"  if ( net ~ {block} ) then {{ reject; }}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_aggr(inputs: BirdInputs) -> str:
    return _render_aggr(inputs.own_blocks)


def _pool_filter(pools: tuple) -> list[str]:
    lines = ["filter calico_pools {", "  calico_aggr();", "  custom_filters();"]
    for pool in pools:
        lines += [f"  if ( net ~ {pool} ) then {{", "    accept;", "  }"]
    return lines + ["  reject;", "}"]


def render_ipam(inputs: BirdInputs) -> str:
    lines = ["# Generated by confd (the Calico double)", *_pool_filter(inputs.pools), "",
             "# Kernel export: Calico sets krt_tunnel per pool here; Debian's BIRD has no",
             "# krt_tunnel, and the pools have IPIP off, so every route is accepted as is.",
             "filter calico_ipip {"]
    for pool in inputs.pools:
        lines += [f"  if ( net ~ {pool} ) then {{", "    accept;", "  }"]
    lines += ["  accept;", "}"]
    return "\n".join(lines) + "\n"


def render_ipam6(inputs: BirdInputs) -> str:
    return "\n".join(["# Generated by confd (the Calico double)", *_pool_filter(inputs.pools6)]) + "\n"


def render_custom(filters: tuple[str, ...]) -> str:
    return "\n".join(["# Generated by confd (the Calico double)", "function custom_filters ()", "{",
                      *filters, "}"]) + "\n"


KERNEL_COMMENT = [
    "  graceful restart;  # Turn on graceful restart to reduce potential flaps in",
    "                     # routes when reloading BIRD configuration.",
    "}",
]


def _head(config_dir: Path, six: str, router_id: IPv4Address, export: str, debug: str) -> list[str]:
    return [
        "# Generated by confd (the Calico double)",
        # Relative, as confd writes them: BIRD resolves them from the config file's folder.
        f'include "bird{six}_aggr.cfg";',
        f'include "custom_filters{six}.cfg";',
        f'include "bird{six}_ipam.cfg";',
        "",
        f"router id {router_id};",
        "",
        "# Configure synchronization between routing tables and kernel.",
        "protocol kernel {",
        "  learn;             # Learn all alien routes from the kernel",
        "  persist;           # Don't remove routes on bird shutdown",
        "  scan time 2;       # Scan kernel routing table every 2 seconds",
        "  import all;",
        f"  export {export};",
        *KERNEL_COMMENT,
        "",
        "# Watch interface up/down events.",
        "protocol device {",
        debug + "  scan time 2;    # Scan interfaces every 2 seconds",
        "}",
        "",
        "protocol direct {",
        debug + '  interface -"cali*", "*"; # Exclude cali* but include everything else.',
        "}",
        "",
    ]


def _extra_section(title: str, kind: str, peers: tuple[ExtraPeer, ...], sep: str, none: str) -> list[str]:
    """The template's global and node-specific peer sections (bird.cfg.mesh.template:76-98)."""
    out = ["", f"# ------------- {title} -------------"]
    if not peers:
        return [*out, none]
    for peer in peers:
        out += [f"# For peer {peer.key}",
                f"protocol bgp {kind}_{'_'.join(peer.ip.split(sep))} from bgp_template {{",
                f"  neighbor {peer.ip} as {peer.as_num};",
                "}",
                ""]
    return out


def _bgp(inputs: BirdInputs, source: IPv4Address | IPv6Address, peers: tuple[Peer, ...], debug: str,
         family_key: str) -> list[str]:
    out = [
        "# Template for all BGP clients",
        "template bgp bgp_template {",
        debug + '  description "Connection to BGP peer";',
        f"  local as {inputs.as_num};",
        "  multihop;",
        "  gateway recursive; # This should be the default, but just in case.",
        "  import all;        # Import all routes, since we don't know what the upstream",
        "                     # topology is and therefore have to trust the ToR/RR.",
        "  export filter calico_pools;  # Only want to export routes for workloads.",
        "  next hop self;     # Disable next hop processing and always advertise our",
        "                     # local address as nexthop",
        f"  source address {source};  # The local address we use for the TCP connection",
        "  add paths on;",
        "  graceful restart;  # See comment in kernel section about graceful restart.",
        "}",
        "",
        "# ------------- Node-to-node mesh -------------",
    ]
    if inputs.mesh_enabled:
        for peer in peers:
            out += [
                f"# For peer /host/{peer.node}/{family_key}",
                f"protocol bgp {protocol_name('Mesh', peer.ip)} from bgp_template {{",
                f"  neighbor {peer.ip} as {peer.as_num};",
                "}",
                "",
            ]
    else:
        out.append("# Node-to-node mesh disabled")
    six = family_key == "ip_addr_v6"
    sep = ":" if six else "."
    out += _extra_section("Global peers", "Global", inputs.global_peers6 if six else inputs.global_peers, sep,
                          "# No global peers configured.")
    return out + _extra_section("Node-specific peers", "Node", inputs.node_peers6 if six else inputs.node_peers,
                                sep, "# No node-specific peers configured.")


def render_main(inputs: BirdInputs, config_dir: Path) -> str:
    debug = _debug(inputs.log_level)
    out = _head(config_dir, "", inputs.router_id, "filter calico_ipip", debug)
    out += _bgp(inputs, inputs.router_id, inputs.peers, debug, "ip_addr_v4")
    return "\n".join(out) + "\n"


def render_main6(inputs: BirdInputs, config_dir: Path) -> str:
    debug = _debug(inputs.log_level)
    out = _head(config_dir, "6", inputs.router_id, "all", debug)
    if inputs.ip6 is None:
        out.append("# IPv6 disabled on this node.")
    else:
        out += _bgp(inputs, inputs.ip6, inputs.peers6, debug, "ip_addr_v6")
    return "\n".join(out) + "\n"


def render_all(inputs: BirdInputs, config_dir: Path) -> dict[str, str]:
    return {
        "bird.cfg": render_main(inputs, config_dir),
        "bird_aggr.cfg": render_aggr(inputs),
        "bird_ipam.cfg": render_ipam(inputs),
        "custom_filters.cfg": render_custom(inputs.custom_filters),
        "bird6.cfg": render_main6(inputs, config_dir),
        "bird6_aggr.cfg": _render_aggr(inputs.own_blocks6),
        "bird6_ipam.cfg": render_ipam6(inputs),
        "custom_filters6.cfg": render_custom(inputs.custom_filters6),
    }


def write_config(files: dict[str, str], config_dir: Path) -> bool:
    """Write the files atomically; True when any content changed."""
    config_dir.mkdir(parents=True, exist_ok=True)
    changed = False
    for name, text in files.items():
        path = config_dir / name
        try:
            if path.read_text() == text:
                continue
        except OSError:
            pass
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        changed = True
    return changed

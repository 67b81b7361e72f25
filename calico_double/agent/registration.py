"""What calico/node v2.6.1's startup writes to etcd: the node, the default pools, cluster config.

projectcalico/calico@v2.6.1:calico_node/startup/startup.go, over libcalico-go v1.7.1's
etcd v2 layout (lib/backend/compat toNodeComponents, lib/client config.go, ippool.go).
Lines startup.go prints go to the log at the matching level: its message() at INFO,
warning() at WARNING, fatal() at ERROR, so a plain formatter reproduces its stdout. A
fatal path logs its lines and raises StartupError; the caller prints `Terminating` and
exits 1.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)
from pathlib import Path
from typing import Protocol

from . import CALICO_VERSION
from .config import Config
from .etcd import EtcdClient, EtcdError, EtcdKeyNotFound
from .ipam import DEFAULT_POOL, POOL_DIR, POOL_DIR_V6, cidr_to_name, go_json, host_affinity_dir, pool_json
from .netdev import DEFAULT_INTERFACES_TO_EXCLUDE, CommandError

log = logging.getLogger(__name__)

DEFAULT_AS = 64512
DEFAULT_IPV6_POOL = IPv6Network("fd80:24e2:f998:72d6::/64")
HOSTS = "/calico/v1/host"
BGP_HOSTS = "/calico/bgp/v1/host"
BGP_GLOBAL = "/calico/bgp/v1/global"
CONFIG = "/calico/v1/config"
IPIP_MODES = {"", "always", "cross-subnet"}  # libcalico-go v1.7.1 validator ipipModeRegex


class StartupError(RuntimeError):
    """startup.go's fatal()/terminate() path: the lines are logged already."""


class NodeConflict(StartupError):
    """Another node is registered with this node's IP address."""


class Interfaces(Protocol):
    """The part of NetDev startup uses (autodetection and validateIP)."""

    def autodetect(self, version: int = 4, include: tuple[str, ...] | list[str] = (),
                   exclude: tuple[str, ...] | list[str] = DEFAULT_INTERFACES_TO_EXCLUDE
                   ) -> tuple[str, IPv4Interface | IPv6Interface]: ...

    def find_address(self, ip: IPv4Address | IPv6Address) -> tuple[str, IPv4Interface | IPv6Interface] | None: ...


@dataclass(frozen=True)
class Registration:
    node: str
    ipv4: IPv4Interface | None  # the BGP address with the mask it was given or found with
    ipv6: IPv6Interface | None
    as_num: int | None  # node-specific AS, None = use the global one


def host_key(node: str) -> str:
    return f"{HOSTS}/{node}"


def stored_ipv4(etcd: EtcdClient, node: str) -> str | None:
    return etcd.get_value(f"{BGP_HOSTS}/{node}/ip_addr_v4") or None


def _fatal(text: str, *messages: str) -> StartupError:
    log.error("%s", text)
    for line in messages:
        log.info("%s", line)
    return StartupError(text)


# -- the stored node -------------------------------------------------------------------------
def read_node(etcd: EtcdClient, node: str) -> Registration | None:
    """getNode: the node as stored (None when it does not exist); etcd errors are fatal.

    The address carries the stored network's mask (network_v4), else a full mask.
    """
    try:
        etcd.get(host_key(node))
    except EtcdKeyNotFound:
        return None
    except EtcdError:
        raise _fatal("Unable to access datastore to query node configuration") from None

    def address(version: int) -> IPv4Interface | IPv6Interface | None:
        ip_text = etcd.get_value(f"{BGP_HOSTS}/{node}/ip_addr_v{version}") or ""
        if not ip_text:
            return None
        net_text = etcd.get_value(f"{BGP_HOSTS}/{node}/network_v{version}") or ""
        try:
            prefix = ip_network(net_text).prefixlen if net_text else (32 if version == 4 else 128)
            return ip_interface(f"{ip_text}/{prefix}")
        except ValueError:
            return None

    as_text = etcd.get_value(f"{BGP_HOSTS}/{node}/as_num") or ""
    v4, v6 = address(4), address(6)
    return Registration(node, v4 if isinstance(v4, IPv4Interface) else None,
                        v6 if isinstance(v6, IPv6Interface) else None,
                        int(as_text) if as_text.isdigit() else None)


# -- addresses -------------------------------------------------------------------------------
def _parse_ip_env(name: str, value: str, version: int) -> IPv4Interface | IPv6Interface:
    """parseIPEnvironment: an address (full mask) or a CIDR keeping the host part."""
    try:
        addr = ip_interface(value)
    except ValueError:
        addr = None
    if addr is None or addr.version != version:
        raise _fatal(f"Environment does not contain a valid IPv{version} address: {name}={value}")
    log.info("Using IPv%d address from environment: %s=%s", version, name, value)
    return addr


def _validate_ip(netdev: Interfaces, addr: IPv4Interface | IPv6Interface | None) -> None:
    if addr is None:
        return
    found = netdev.find_address(addr.ip)
    if found is None:
        log.warning("Unable to confirm IPv%d address %s is assigned to this host", addr.version, addr.ip)
    else:
        log.info("IPv%d address %s discovered on interface %s", addr.version, addr.ip, found[0])


def _autodetect(netdev: Interfaces, method: str, version: int) -> IPv4Interface | IPv6Interface | None:
    """autoDetectCIDR for first-found, interface= and skip-interface=."""
    try:
        if method in ("", "first-found"):
            name, addr = netdev.autodetect(version)
            log.info("Using autodetected IPv%d address on interface %s: %s", version, name, addr)
            return addr
        if method.startswith("interface="):
            regexes = [r.strip() for r in method.removeprefix("interface=").split(",")]
            name, addr = netdev.autodetect(version, include=regexes, exclude=())
            log.info("Using autodetected IPv%d address %s on matching interface %s", version, addr, name)
            return addr
        if method.startswith("skip-interface="):
            regexes = [r.strip() for r in method.removeprefix("skip-interface=").split(",")]
            name, addr = netdev.autodetect(version, exclude=[*DEFAULT_INTERFACES_TO_EXCLUDE, *regexes])
            log.info("Using autodetected IPv%d address on interface %s: %s while skipping matching interfaces",
                     version, name, addr)
            return addr
    except CommandError as exc:
        log.warning("Unable to auto-detect an IPv%d address: %s", version, exc)
        return None
    if method.startswith("can-reach="):
        raise _fatal(f"IP autodetection method {method} is not implemented by the Calico double: "
                     "use first-found, interface= or skip-interface=")
    raise _fatal(f"Invalid IP autodection method: {method}")  # sic, startup.go's spelling


def configure_ips(cfg: Config, stored: Registration | None, netdev: Interfaces
                  ) -> tuple[IPv4Interface, IPv6Interface | None, bool]:
    """configureIPsAndSubnets: (IPv4, IPv6, changed) where changed asks for a conflict check.

    IPv4 is autodetected when IP=autodetect, or when IP is empty and no address is stored;
    IPv6 only when IP6=autodetect.
    """
    old4 = stored.ipv4 if stored else None
    old6 = stored.ipv6 if stored else None
    ipv4: IPv4Interface | IPv6Interface | None = old4
    ip_env = cfg.ip or ""
    if ip_env == "autodetect" or (ip_env == "" and old4 is None):
        found = _autodetect(netdev, cfg.ip_autodetection_method, 4)
        if found is not None:
            ipv4 = found
        elif old4 is None:
            raise _fatal("Couldn't autodetect a management IPv4 address:",
                         "  -  provide an IPv4 address by configuring one in the node resource, or",
                         "  -  provide an IPv4 address using the IP environment, or",
                         "  -  if auto-detecting, use a different autodetection method.")
        else:
            log.warning("Autodetection of IPv4 address failed, keeping existing value: %s", old4)
            _validate_ip(netdev, old4)
    else:
        if ip_env:
            ipv4 = _parse_ip_env("IP", ip_env, 4)
        _validate_ip(netdev, ipv4)

    ipv6: IPv4Interface | IPv6Interface | None = old6
    ip6_env = cfg.ip6 or ""
    if ip6_env == "autodetect":
        found = _autodetect(netdev, cfg.ip6_autodetection_method, 6)
        if found is not None:
            ipv6 = found
        elif old6 is None:
            raise _fatal("Couldn't autodetect a management IPv6 address:",
                         "  -  provide an IPv6 address by configuring one in the node resource, or",
                         "  -  provide an IPv6 address using the IP6 environment, or",
                         "  -  use a different autodetection method, or",
                         "  -  don't request autodetection of an IPv6 address.")
        else:
            log.warning("Autodetection of IPv6 address failed, keeping existing value: %s", old6)
    else:
        if ip6_env:
            ipv6 = _parse_ip_env("IP6", ip6_env, 6)
        _validate_ip(netdev, ipv6)

    assert isinstance(ipv4, IPv4Interface)
    assert ipv6 is None or isinstance(ipv6, IPv6Interface)
    changed = old4 is None or old4.ip != ipv4.ip or (
        (old6 is None) != (ipv6 is None) or (old6 is not None and ipv6 is not None and old6.ip != ipv6.ip))
    return ipv4, ipv6, changed


def configure_as_number(cfg: Config, stored: Registration | None) -> int | None:
    if cfg.as_num is not None:
        log.info("Using AS number specified in environment (AS=%s)", cfg.as_num)
        return cfg.as_num
    if stored is None or stored.as_num is None:
        log.info("No AS number configured on node resource, using global value")
        return None
    log.info("Using AS number %s configured in node resource", stored.as_num)
    return stored.as_num


def check_conflicting_nodes(etcd: EtcdClient, reg: Registration) -> None:
    """checkConflictingNodes: another node with our IPv4 or IPv6 address stops the start.

    Nodes are the directories under /calico/v1/host; our own node with a different
    address only draws a warning.
    """
    errored = False
    for host in sorted(etcd.children(HOSTS), key=lambda n: n.key):
        name = host.key.rsplit("/", 1)[-1]
        theirs = {v: etcd.get_value(f"{BGP_HOSTS}/{name}/ip_addr_v{v}") or "" for v in (4, 6)}
        ours = {4: reg.ipv4.ip if reg.ipv4 else None, 6: reg.ipv6.ip if reg.ipv6 else None}
        for version in (4, 6):
            their_ip = ip_address(theirs[version]) if theirs[version] else None
            our_ip = ours[version]
            if their_ip is None or our_ip is None:
                continue
            if name == reg.node:
                if their_ip != our_ip:
                    log.warning("Calico node '%s' IPv%d address has changed:", name, version)
                    log.info(" -  This could happen if multiple nodes are configured with the same name")
                    log.info(" -  Original IP: %s", their_ip)
                    log.info(" -  Updated IP: %s", our_ip)
            elif their_ip == our_ip:
                log.info("Calico node '%s' is already using the IPv%d address %s:", name, version, our_ip)
                log.info(" -  Check the node configuration to remove the IP address conflict")
                errored = True
    if errored:
        raise NodeConflict(f"Another Calico node is already using the address of node '{reg.node}'")


def register_node(etcd: EtcdClient, reg: Registration) -> None:
    """Nodes().Apply: metadata, then each BGP/host key set, or deleted when unset."""
    etcd.set(f"{host_key(reg.node)}/metadata", "{}")
    bgp = f"{BGP_HOSTS}/{reg.node}"
    values: list[tuple[str, str | None]] = [
        (f"{bgp}/ip_addr_v4", str(reg.ipv4.ip) if reg.ipv4 else ""),
        (f"{bgp}/ip_addr_v6", str(reg.ipv6.ip) if reg.ipv6 else ""),
        (f"{host_key(reg.node)}/bird_ip", str(reg.ipv4.ip) if reg.ipv4 else None),
        (f"{bgp}/as_num", str(reg.as_num) if reg.as_num is not None else None),
        (f"{bgp}/network_v4", str(reg.ipv4.network) if reg.ipv4 else None),
        (f"{bgp}/network_v6", str(reg.ipv6.network) if reg.ipv6 else None),
    ]
    for key, value in values:
        if value is None:
            etcd.delete_if_present(key)
        else:
            etcd.set(key, value)


# -- pools -----------------------------------------------------------------------------------
def _create_pool(etcd: EtcdClient, cidr: IPv4Network | IPv6Network, ipip_mode: str, nat_outgoing: bool) -> None:
    """createIPPool: prevExist=false, so a pool another node created first is left alone."""
    version = cidr.version
    mode = "" if ipip_mode == "off" else ipip_mode
    logged_mode = mode or "off"
    # The first part is startup.go's; the reasons paraphrase libcalico-go's validator.
    problem = None
    if mode not in IPIP_MODES:
        problem = f"IPIP mode '{mode}' is not one of always, cross-subnet, off (CALICO_IPV4POOL_IPIP)"
    elif version == 6 and mode:
        problem = "IPIP is not supported on an IPv6 IP pool"
    elif cidr.max_prefixlen - cidr.prefixlen < 6:
        problem = f"IP pool size is too small (min /{cidr.max_prefixlen - 6}) for use with Calico IPAM"
    elif version == 4 and cidr.overlaps(IPv4Network("169.254.0.0/16")):
        problem = "IP pool range overlaps with IPv4 Link Local range 169.254.0.0/16"
    if problem:
        raise _fatal(f"Failed to create default IPv{version} IP pool: {problem}")
    directory = POOL_DIR if version == 4 else POOL_DIR_V6
    if isinstance(cidr, IPv4Network):
        key, value = f"{directory}/{cidr_to_name(cidr)}", pool_json(cidr, nat_outgoing, mode)
    else:
        key = f"{directory}/{cidr.network_address}-{cidr.prefixlen}"
        value = go_json({"cidr": str(cidr), "ipip": "", "ipip_mode": "", "masquerade": nat_outgoing,
                         "ipam": True, "disabled": False})
    if not etcd.create_if_absent(key, value):
        return
    if mode:
        etcd.set(f"{CONFIG}/IpInIpEnabled", "true")  # ipPools.maybeEnableIPIP
    log.info("Created default IPv%d pool (%s) with NAT outgoing %s. IPIP mode: %s",
             version, cidr, "true" if nat_outgoing else "false", logged_mode)


def ipv6_supported(cfg: Config, proc_sys: Path) -> bool:
    return cfg.felix_ipv6support and (proc_sys / "net/ipv6").exists()


def configure_ip_pools(etcd: EtcdClient, cfg: Config, proc_sys: Path = Path("/proc/sys")) -> None:
    """configureIPPools: a default pool per IP version that has none yet.

    A pool of a version that already exists, whatever its CIDR, means no default pool
    of that version (so a second node never adds one, and an admin's pool is kept).
    """
    if cfg.no_default_pools:
        if cfg.ipv4pool_cidr or cfg.ipv6pool_cidr:
            raise _fatal("Invalid configuration with NO_DEFAULT_POOLS defined and CALICO_IPV4POOL_CIDR "
                         "or CALICO_IPV6POOL_CIDR defined.")
        return
    v4_present = bool(etcd.children(POOL_DIR))
    v6_present = bool(etcd.children(POOL_DIR_V6))
    try:
        v4 = ip_network(cfg.ipv4pool_cidr or str(DEFAULT_POOL), strict=False)
    except ValueError:
        v4 = None
    if not isinstance(v4, IPv4Network):
        raise _fatal(f"Invalid CIDR specified in CALICO_IPV4POOL_CIDR '{cfg.ipv4pool_cidr}'")
    try:
        v6 = ip_network(cfg.ipv6pool_cidr or str(DEFAULT_IPV6_POOL), strict=False)
    except ValueError:
        v6 = None
    if not isinstance(v6, IPv6Network):
        raise _fatal(f"Invalid CIDR specified in CALICO_IPV6POOL_CIDR '{cfg.ipv6pool_cidr}'")
    if not v4_present:
        _create_pool(etcd, v4, cfg.ipv4pool_ipip, cfg.ipv4pool_nat_outgoing)
    if not v6_present and ipv6_supported(cfg, proc_sys):
        _create_pool(etcd, v6, "", cfg.ipv6pool_nat_outgoing)


# -- cluster and per-host configuration -------------------------------------------------------
def ensure_initialized(etcd: EtcdClient) -> None:
    """Client.EnsureInitialized (libcalico-go v1.7.1): the Ready flag and a cluster GUID, if absent."""
    etcd.create_if_absent("/calico/v1/Ready", "true")
    etcd.create_if_absent(f"{CONFIG}/ClusterGUID", uuid.uuid4().hex)


def _merge_cluster_type(etcd: EtcdClient, cluster_type: str) -> None:
    """updateClusterType: add CLUSTER_TYPE's entries to the stored comma list."""
    if not cluster_type:
        return
    current = etcd.get_value(f"{CONFIG}/ClusterType") or ""
    types = current.split(",") if current else []
    added = [t for t in cluster_type.split(",") if t not in types]
    if added or not current:
        etcd.set(f"{CONFIG}/ClusterType", ",".join(types + added))


def ensure_default_config(etcd: EtcdClient, node: str, cluster_type: str = "",
                          version: str = CALICO_VERSION) -> None:
    """ensureDefaultConfig: defaults only where unset, except CalicoVersion (every start)."""
    etcd.create_if_absent(f"{CONFIG}/ReportingIntervalSecs", "0")
    etcd.create_if_absent(f"{CONFIG}/LogSeverityScreen", "info")
    etcd.create_if_absent(f"{host_key(node)}/config/DefaultEndpointToHostAction", "RETURN")
    etcd.set(f"{CONFIG}/CalicoVersion", version)
    _merge_cluster_type(etcd, cluster_type)
    etcd.create_if_absent(f"{BGP_GLOBAL}/node_mesh", go_json({"enabled": True}))
    etcd.create_if_absent(f"{BGP_GLOBAL}/as_num", str(DEFAULT_AS))
    etcd.create_if_absent(f"{BGP_GLOBAL}/loglevel", "info")
    ensure_node_directories(etcd, node)


def node_directories(node: str) -> list[str]:
    """EnsureCalicoNodeInitialized: the directories confd watches, created empty."""
    return [POOL_DIR, POOL_DIR_V6, f"{BGP_GLOBAL}/custom_filters/v4", f"{BGP_GLOBAL}/custom_filters/v6",
            host_affinity_dir(node), f"/calico/ipam/v2/host/{node}/ipv6/block"]


def ensure_node_directories(etcd: EtcdClient, node: str) -> None:
    for directory in node_directories(node):
        etcd.create_dir(directory)  # False when it exists: fine


# -- the whole start-up sequence ------------------------------------------------------------
def start_node(cfg: Config, etcd: EtcdClient, netdev: Interfaces,
               proc_sys: Path = Path("/proc/sys")) -> Registration:
    """startup.go main() after the client is made, in its order; returns what was registered."""
    if cfg.ipv4pool_ipip in ("always", "cross-subnet"):
        # Refused before anything is written: nothing in the double runs tunl0 or IPIP routes.
        raise _fatal(f"IPIP mode {cfg.ipv4pool_ipip} (CALICO_IPV4POOL_IPIP) is not implemented by the "
                     "Calico double: leave CALICO_IPV4POOL_IPIP unset or off")
    stored = read_node(etcd, cfg.nodename)
    # Policy-only mode (CALICO_NETWORKING_BACKEND=none) rewrites the node as it is stored.
    reg = stored or Registration(cfg.nodename, None, None, None)
    try:
        if cfg.backend != "none":
            ipv4, ipv6, changed = configure_ips(cfg, stored, netdev)
            if changed and not cfg.disable_node_ip_check:
                check_conflicting_nodes(etcd, Registration(cfg.nodename, ipv4, ipv6, None))
            reg = Registration(cfg.nodename, ipv4, ipv6, configure_as_number(cfg, stored))
        register_node(etcd, reg)
        configure_ip_pools(etcd, cfg, proc_sys)
        ensure_default_config(etcd, cfg.nodename, cfg.cluster_type)
        ensure_initialized(etcd)
    except StartupError:
        raise
    except EtcdError as exc:
        raise _fatal(f"Unable to set node resource configuration: {exc}") from None
    log.info("Using node name: %s", cfg.nodename)
    return reg

"""calico/node 2.6.1's `startup`, as rc.local runs it before runit starts any service.

Order and wording follow projectcalico/calico@v2.6.1:calico_node/startup/startup.go: its
`message`/`warning`/`fatal` helpers print plain lines to stdout (`WARNING: `/`ERROR: `
prefixes) and logrus prints nothing below ERROR unless CALICO_STARTUP_LOGLEVEL says so.
Without WAIT_FOR_DATASTORE=true there is no waiting: etcd unreachable means `ERROR: Unable
to access datastore to query node configuration`, `Terminating`, exit 1.
"""

from __future__ import annotations

import logging
import sys
from ipaddress import IPv4Address, IPv4Interface

from .config import Config
from .etcd import EtcdClient, EtcdError, EtcdKeyNotFound
from .ipam import Ipam
from .netdev import NetDev
from .registration import (
    BGP_HOSTS,
    NodeConflict,
    Registration,
    ensure_cluster_config,
    ensure_default_pool,
    register_node,
    stored_ipv4,
)

log = logging.getLogger("startup")


class StartupFailed(Exception):
    """startup.go's fatal() + terminate(): the lines are already printed."""


class _MessageFormat(logging.Formatter):
    """startup.go's message()/warning()/fatal(): plain, `WARNING: `, `ERROR: `."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"ERROR: {text}"
        if record.levelno >= logging.WARNING:
            return f"WARNING: {text}"
        return text


def setup_logging(stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(_MessageFormat())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def fatal(text: str) -> StartupFailed:
    log.error("%s", text)
    log.info("Terminating")
    return StartupFailed(text)


def resolve_ip(cfg: Config, etcd: EtcdClient, netdev: NetDev) -> IPv4Interface:
    """IP from the environment, else the stored one, else autodetect (startup.go configureIPsAndSubnets)."""
    text = cfg.ip
    if text and text.lower() != "autodetect":
        try:
            ip = IPv4Address(text.split("/")[0])
        except ValueError:
            raise fatal(f"Environment does not contain a valid IPv4 address: IP={text}") from None
        log.info("Using IPv4 address from environment: IP=%s", text)
        found = netdev.interface_for(ip)
        if found is None:
            log.warning("Unable to confirm IPv4 address %s is assigned to this host", ip)
            return IPv4Interface(f"{ip}/32")
        log.info("IPv4 address %s discovered on interface %s", ip, _iface_of(netdev, ip))
        return found
    if text is None:
        stored = stored_ipv4(etcd, cfg.nodename)
        if stored:
            found = netdev.interface_for(IPv4Address(stored))
            if found is not None:
                return found
    try:
        iface, addr = netdev.autodetect_ipv4()
    except (RuntimeError, ValueError):
        log.error("Couldn't autodetect a management IPv4 address:")
        log.info("  -  provide an IPv4 address by configuring one in the node resource, or")
        log.info("  -  provide an IPv4 address using the IP environment, or")
        log.info("  -  if auto-detecting, use a different autodetection method.")
        log.info("Terminating")
        raise StartupFailed("no IPv4 address") from None
    log.info("Using autodetected IPv4 address on interface %s: %s", iface, addr)
    return addr


def _iface_of(netdev: NetDev, ip: IPv4Address) -> str:
    for name, addr in netdev.global_ipv4_addresses():
        if addr.ip == ip:
            return name
    return "?"


def query_node(etcd: EtcdClient, node: str) -> None:
    """getNode(): any datastore error other than 'not found' is fatal."""
    try:
        etcd.get(f"{BGP_HOSTS}/{node}", recursive=True)
    except EtcdKeyNotFound:
        return
    except EtcdError:
        raise fatal("Unable to access datastore to query node configuration") from None


def run(cfg: Config, etcd: EtcdClient, netdev: NetDev) -> IPv4Address:
    """The node's registration; returns the BGP router address."""
    log.info("Skipping datastore connection test")
    query_node(etcd, cfg.nodename)
    try:
        addr = resolve_ip(cfg, etcd, netdev)
        if cfg.as_num is not None:
            log.info("Using AS number specified in environment (AS=%s)", cfg.as_num)
        else:
            log.info("No AS number configured on node resource, using global value")
        try:
            register_node(etcd, Registration(cfg.nodename, addr, cfg.ip6, cfg.as_num))
        except NodeConflict as exc:
            raise fatal(str(exc)) from None
        ensure_default_pool(etcd, cfg.no_default_pools)
        ensure_cluster_config(etcd)
        Ipam(etcd, cfg.nodename).reconcile_affinities()
    except EtcdError as exc:
        raise fatal(f"Unable to set node resource configuration: {exc}") from None
    log.info("Using node name: %s", cfg.nodename)
    return addr.ip

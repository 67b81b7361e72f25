"""The agent's settings, read from the same environment variables calico/node v2.6 reads."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """startup.go evaluateENVBool: set (even empty) and not a false word means true."""
    if name not in env:
        return default
    return env[name].lower() not in {"false", "0", "no", "n", "f"}


def _opt(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


class ConfigError(ValueError):
    """An environment variable has a value the agent cannot use."""


@dataclass(frozen=True)
class Config:
    nodename: str
    ip: str | None  # None or "autodetect": detect like Calico's "first-found"
    ip6: str | None
    backend: str
    as_num: int | None
    no_default_pools: bool
    libnetwork_enabled: bool
    etcd_endpoints: list[str]
    etcd_ca_file: str | None = None
    etcd_cert_file: str | None = None
    etcd_key_file: str | None = None
    etcd_wait_timeout: float = 120.0
    plugin_dir: Path = Path("/run/docker/plugins")
    run_dir: Path = Path("/var/run/calico")
    bird_config_dir: Path = Path("/etc/calico/confd/config")
    log_dir: Path = Path("/var/log/calico")
    poll_interval: float = 1.0
    # The libnetwork plugin's host name (utils/os GetHostname: HOSTNAME, else the OS host
    # name; never NODENAME): it keys workload endpoints and IPAM block affinities.
    plugin_hostname: str = ""
    libnetwork_create_profiles: bool = True
    ip_autodetection_method: str = ""
    ip6_autodetection_method: str = ""
    disable_node_ip_check: bool = False
    ipv4pool_cidr: str = ""
    ipv4pool_ipip: str = ""
    ipv4pool_nat_outgoing: bool = True
    ipv6pool_cidr: str = ""
    ipv6pool_nat_outgoing: bool = False
    felix_ipv6support: bool = True
    cluster_type: str = ""
    wait_for_datastore: bool = False

    @property
    def bird_socket(self) -> Path:
        return self.run_dir / "bird.ctl"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        nodename = _opt(env, "NODENAME") or _opt(env, "HOSTNAME") or socket.gethostname()
        as_text = _opt(env, "AS")
        as_num: int | None = None
        if as_text is not None:
            try:
                as_num = int(as_text)
            except ValueError as exc:
                raise ConfigError(f"AS={as_text!r} is not an AS number") from exc
        endpoints_text = _opt(env, "ETCD_ENDPOINTS")
        if endpoints_text is None:
            # Calico 2.x also understood the older ETCD_AUTHORITY/ETCD_SCHEME pair.
            authority = _opt(env, "ETCD_AUTHORITY") or "127.0.0.1:2379"
            scheme = _opt(env, "ETCD_SCHEME") or "http"
            endpoints_text = f"{scheme}://{authority}"
        endpoints = [e.strip().rstrip("/") for e in endpoints_text.split(",") if e.strip()]
        backend = (_opt(env, "CALICO_NETWORKING_BACKEND") or "bird").lower()
        if backend not in {"bird", "none"}:
            raise ConfigError(
                f"CALICO_NETWORKING_BACKEND={backend!r}: the Calico double implements 'bird' and 'none'"
            )
        return cls(
            nodename=nodename,
            ip=_opt(env, "IP"),
            ip6=_opt(env, "IP6"),
            backend=backend,
            as_num=as_num,
            # startup.go: only the value "true" (any case) turns the default pools off.
            no_default_pools=env.get("NO_DEFAULT_POOLS", "").lower() == "true",
            # rc.local: [ "$CALICO_LIBNETWORK_ENABLED" == "true" ], exactly.
            libnetwork_enabled=env.get("CALICO_LIBNETWORK_ENABLED") == "true",
            etcd_endpoints=endpoints,
            etcd_ca_file=_opt(env, "ETCD_CA_CERT_FILE"),
            etcd_cert_file=_opt(env, "ETCD_CERT_FILE"),
            etcd_key_file=_opt(env, "ETCD_KEY_FILE"),
            etcd_wait_timeout=float(_opt(env, "CALICO_DOUBLE_ETCD_WAIT") or 120),
            plugin_dir=Path(_opt(env, "CALICO_DOUBLE_PLUGIN_DIR") or "/run/docker/plugins"),
            run_dir=Path(_opt(env, "CALICO_DOUBLE_RUN_DIR") or "/var/run/calico"),
            bird_config_dir=Path(
                _opt(env, "CALICO_DOUBLE_BIRD_DIR") or "/etc/calico/confd/config"
            ),
            log_dir=Path(_opt(env, "CALICO_DOUBLE_LOG_DIR") or "/var/log/calico"),
            plugin_hostname=env.get("HOSTNAME") or socket.gethostname(),
            libnetwork_create_profiles=env.get("CALICO_LIBNETWORK_CREATE_PROFILES", "").lower() != "false",
            ip_autodetection_method=env.get("IP_AUTODETECTION_METHOD", ""),
            ip6_autodetection_method=env.get("IP6_AUTODETECTION_METHOD", ""),
            disable_node_ip_check=env.get("DISABLE_NODE_IP_CHECK", "") == "true",
            ipv4pool_cidr=env.get("CALICO_IPV4POOL_CIDR", ""),
            ipv4pool_ipip=env.get("CALICO_IPV4POOL_IPIP", "").lower(),
            ipv4pool_nat_outgoing=env_bool(env, "CALICO_IPV4POOL_NAT_OUTGOING", True),
            ipv6pool_cidr=env.get("CALICO_IPV6POOL_CIDR", ""),
            ipv6pool_nat_outgoing=env_bool(env, "CALICO_IPV6POOL_NAT_OUTGOING", False),
            felix_ipv6support=env_bool(env, "FELIX_IPV6SUPPORT", True),
            cluster_type=env.get("CLUSTER_TYPE", ""),
            # startup.go: "An explicit value of true is required to wait for the datastore."
            wait_for_datastore=env.get("WAIT_FOR_DATASTORE") == "true",
        )

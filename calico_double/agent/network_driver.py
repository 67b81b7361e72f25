"""Docker NetworkDriver `calico`, as projectcalico/libnetwork-plugin v1.1.0 driver/network_driver.go.

CreateEndpoint writes the workload endpoint under the plugin's host name (HOSTNAME, else
the OS host name) and, named after the Docker network's *name* (asked from Docker), a
profile allowing traffic from the same network; profiles are never deleted. Join creates
the veth pair only: the host route, proxy ARP and sysctls are felix's work.
"""

from __future__ import annotations

import logging
import os
from ipaddress import IPv4Interface
from typing import Protocol

from .docker_api import DockerClient, DockerError
from .etcd import EtcdClient, EtcdConflict, EtcdError, EtcdKeyNotFound
from .ipam import go_json
from .netdev import CommandError, NetDev
from .plugin_server import Handler, PluginError

log = logging.getLogger(__name__)

FIXED_MAC = "EE:EE:EE:EE:EE:EE"  # as the plugin answers Docker; etcd holds the lower-case form
GATEWAY = "169.254.1.1"
ROUTE_CONNECTED = 1
IF_PREFIX = "cali"
ORCHESTRATOR = "libnetwork"
WORKLOAD = "libnetwork"


class NetworkNames(Protocol):
    def network_name(self, network_id: str) -> str: ...


def host_ifname(endpoint_id: str) -> str:
    return "cali" + endpoint_id[:11]


def temp_ifname(endpoint_id: str) -> str:
    return "temp" + endpoint_id[:11]


def endpoint_key(host: str, endpoint_id: str) -> str:
    return f"/calico/v1/host/{host}/workload/{ORCHESTRATOR}/{WORKLOAD}/endpoint/{endpoint_id}"


def profile_key(name: str) -> str:
    return f"/calico/v1/policy/profile/{name}"


def profile_values(name: str) -> list[tuple[str, str]]:
    """The profile the plugin creates for a network, in the order libcalico-go writes it."""
    rules = {"inbound_rules": [{"action": "allow", "src_tag": name}], "outbound_rules": [{"action": "allow"}]}
    base = profile_key(name)
    return [(f"{base}/tags", go_json([name])), (f"{base}/labels", go_json({})), (f"{base}/rules", go_json(rules))]


def _parse_mac(text: str) -> str:
    """net.ParseMAC for the 6-byte forms Docker passes; returns Go's lower-case String()."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise PluginError(f"Error parsing MAC address: address {text}: invalid MAC address")
    return ":".join(p.lower() for p in parts)


class NetworkDriver:
    def __init__(self, etcd: EtcdClient, hostname: str, netdev: NetDev, veth_mtu: int | None = None,
                 docker: NetworkNames | None = None, create_profiles: bool = True) -> None:
        self.etcd = etcd
        self.hostname = hostname
        self.netdev = netdev
        self.veth_mtu = veth_mtu
        self.docker: NetworkNames = docker if docker is not None else DockerClient.from_env(os.environ)
        # CALICO_LIBNETWORK_CREATE_PROFILES=false turns profiles off (endpoint profile_ids: null).
        self.create_profiles = create_profiles

    def routes(self) -> dict[str, Handler]:
        def empty(_: dict) -> dict:
            return {}

        return {
            "/Plugin.Activate": lambda _: {"Implements": ["NetworkDriver"]},
            "/NetworkDriver.GetCapabilities": lambda _: {"Scope": "global"},
            "/NetworkDriver.CreateNetwork": self.create_network,
            "/NetworkDriver.DeleteNetwork": self.delete_network,
            "/NetworkDriver.AllocateNetwork": empty,
            "/NetworkDriver.FreeNetwork": empty,
            "/NetworkDriver.CreateEndpoint": self.create_endpoint,
            "/NetworkDriver.EndpointOperInfo": lambda _: {"Value": {}},
            "/NetworkDriver.DeleteEndpoint": self.delete_endpoint,
            "/NetworkDriver.Join": self.join,
            "/NetworkDriver.Leave": self.leave,
            "/NetworkDriver.DiscoverNew": empty,
            "/NetworkDriver.DiscoverDelete": empty,
            "/NetworkDriver.ProgramExternalConnectivity": empty,
            "/NetworkDriver.RevokeExternalConnectivity": empty,
        }

    # -- networks ----------------------------------------------------------------------------
    def create_network(self, req: dict) -> dict:
        """Validation only: nothing is written to etcd for a network."""
        log.info("CreateNetwork %s", req)
        options = req.get("Options") or {}
        generic = options.get("com.docker.network.generic")
        if isinstance(generic, dict) and generic:
            raise PluginError("Arbitrary options are not supported")
        if options.get("com.docker.network.internal") is True:
            raise PluginError("Calico driver does not support the --internal flag.")
        for data in req.get("IPv4Data") or []:
            # Only calico-ipam answers RequestPool with this dummy gateway.
            if data.get("Gateway") != "0.0.0.0/0":
                raise PluginError("Non-Calico IPAM driver is used")
        return {}

    def delete_network(self, req: dict) -> dict:
        log.info("DeleteNetwork %s", req)
        return {}  # the profile stays (libnetwork-plugin never deletes it)

    # -- endpoints ---------------------------------------------------------------------------
    def create_endpoint(self, req: dict) -> dict:
        log.info("CreateEndpoint %s", req)
        network_id = _required(req, "NetworkID")
        endpoint_id = _required(req, "EndpointID")
        iface = req.get("Interface") or {}
        address = iface.get("Address") or ""
        if not address:
            raise PluginError("No address assigned for endpoint")
        try:
            ip = IPv4Interface(address).ip  # Calico ignores the prefix: always /32
        except ValueError:
            raise PluginError(f"Parsing {address} as CIDR failed: invalid CIDR address: {address}") from None
        user_mac = iface.get("MacAddress") or ""
        mac = _parse_mac(user_mac) if user_mac else FIXED_MAC.lower()
        try:
            name = self.docker.network_name(network_id)
        except DockerError as exc:
            raise PluginError(f"Network {network_id} inspection error: {exc}") from exc
        profiles: list[str] | None = None
        if self.create_profiles:
            profiles = [name]
            self.ensure_profile(name)
        endpoint = {
            "state": "active",
            "name": host_ifname(endpoint_id),
            "mac": mac,
            "profile_ids": profiles,
            "ipv4_nets": [f"{ip}/32"],
            "ipv6_nets": [],
        }
        key = endpoint_key(self.hostname, endpoint_id)
        try:
            self.etcd.create(key, go_json(endpoint))
        except EtcdConflict as exc:
            raise PluginError(f"Workload endpoints creation error: resource already exists: {key}") from exc
        # Docker refuses a driver that sets a MAC it already has: an empty MAC means "keep the user's".
        return {"Interface": {"Address": "", "AddressIPv6": "", "MacAddress": "" if user_mac else FIXED_MAC}}

    def ensure_profile(self, name: str) -> None:
        """Profiles().Create: tags, labels, rules, each prevExist=false; an existing profile is kept."""
        for key, value in profile_values(name):
            if not self.etcd.create_if_absent(key, value):
                log.debug("Profile %s already exists", name)
                return
        log.info("Created profile %s", name)

    def delete_endpoint(self, req: dict) -> dict:
        """Only the etcd key: the veth went at Leave, the host route goes with it (felix)."""
        log.info("DeleteEndpoint %s", req)
        endpoint_id = _required(req, "EndpointID")
        key = endpoint_key(self.hostname, endpoint_id)
        try:
            self.etcd.delete(key)
        except EtcdKeyNotFound as exc:
            raise PluginError(
                f"Endpoint {endpoint_id} removal error: resource does not exist: WorkloadEndpoint("
                f"node={self.hostname}, orchestrator={ORCHESTRATOR}, workload={WORKLOAD}, name={endpoint_id})"
            ) from exc
        # As libcalico-go: drop the now empty endpoint/ and workload directories.
        workload = key.rsplit("/endpoint/", 1)[0]
        for parent in (f"{workload}/endpoint", workload):
            try:
                if not self.etcd.delete_empty_dir(parent):
                    break
            except EtcdError:
                break
        return {}

    # -- sandbox -----------------------------------------------------------------------------
    def join(self, req: dict) -> dict:
        log.info("Join %s", req)
        endpoint_id = _required(req, "EndpointID")
        host_if, temp_if = host_ifname(endpoint_id), temp_ifname(endpoint_id)
        try:
            # Docker gives the container side the MAC from CreateEndpoint; setting it here too is harmless.
            self.netdev.create_veth(host_if, temp_if, FIXED_MAC.lower(), self.veth_mtu)
        except CommandError as exc:
            raise PluginError(f"Veth creation error, hostInterfaceName={host_if}, "
                              f"tempInterfaceName={temp_if}: {exc}") from exc
        return {
            "InterfaceName": {"SrcName": temp_if, "DstPrefix": IF_PREFIX},
            "Gateway": GATEWAY,
            "GatewayIPv6": "",
            "StaticRoutes": [{"Destination": f"{GATEWAY}/32", "RouteType": ROUTE_CONNECTED, "NextHop": ""}],
            "DisableGatewayService": False,
        }

    def leave(self, req: dict) -> dict:
        log.info("Leave %s", req)
        endpoint_id = _required(req, "EndpointID")
        try:
            self.netdev.delete_link(host_ifname(endpoint_id))
        except CommandError as exc:
            raise PluginError(f"Veth removal error: {exc}") from exc
        return {}


def _required(req: dict, name: str) -> str:
    value = req.get(name)
    if not value or not isinstance(value, str):
        raise PluginError(f"missing {name}")
    return value

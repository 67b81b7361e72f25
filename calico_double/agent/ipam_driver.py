"""Docker IpamDriver `calico-ipam`, as projectcalico/libnetwork-plugin v1.1.0 driver/ipam_driver.go.

Addresses are assigned for the plugin's host name (HOSTNAME, else the OS host name; not
NODENAME), which also keys the block affinities.
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Address, IPv4Network, ip_network

from .ipam import POOL_DIR_V6, Ipam, IpamError, parse_ipv4
from .plugin_server import Handler, PluginError

log = logging.getLogger(__name__)

POOL_ID_V4 = "CalicoPoolIPv4"
POOL_ID_V6 = "CalicoPoolIPv6"
LOCAL_ADDRESS_SPACE = "CalicoLocalAddressSpace"
GLOBAL_ADDRESS_SPACE = "CalicoGlobalAddressSpace"
GATEWAY_OPTION = "com.docker.network.gateway"


def _go_ip_list(ips: list[IPv4Address]) -> str:
    """fmt's %v of a []net.IP: `[a b]`."""
    return "[" + " ".join(str(ip) for ip in ips) + "]"


class IpamDriver:
    def __init__(self, ipam: Ipam) -> None:
        self.ipam = ipam

    def routes(self) -> dict[str, Handler]:
        return {
            "/Plugin.Activate": lambda _: {"Implements": ["IpamDriver"]},
            "/IpamDriver.GetCapabilities": lambda _: {"RequiresMACAddress": False},
            "/IpamDriver.GetDefaultAddressSpaces": lambda _: {
                "LocalDefaultAddressSpace": LOCAL_ADDRESS_SPACE,
                "GlobalDefaultAddressSpace": GLOBAL_ADDRESS_SPACE,
            },
            "/IpamDriver.RequestPool": self.request_pool,
            "/IpamDriver.ReleasePool": lambda _: {},
            "/IpamDriver.RequestAddress": self.request_address,
            "/IpamDriver.ReleaseAddress": self.release_address,
        }

    def _pool_exists(self, cidr: str) -> bool:
        """IPPools().List by CIDR: the exact pool key, enabled or not, v4 or v6."""
        net = ip_network(cidr, strict=False)
        if isinstance(net, IPv4Network):
            return self.ipam.find_pool(net) is not None
        name = f"{net.network_address}-{net.prefixlen}"
        return self.ipam.etcd.get_value(f"{POOL_DIR_V6}/{name}") is not None

    def request_pool(self, req: dict) -> dict:
        log.info("RequestPool %s", req)
        if req.get("SubPool"):
            raise PluginError(
                "Calico IPAM does not support sub pool configuration on 'docker create network'. "
                "Calico IP Pools should be configured first and IP assignment is from those "
                "pre-configured pools.")
        if req.get("Options"):
            raise PluginError("Arbitrary options are not supported")
        if req.get("V6"):
            raise PluginError("IPv6 isn't supported")
        pool_id, pool = POOL_ID_V4, "0.0.0.0/0"
        if req.get("Pool"):
            try:
                exists = self._pool_exists(req["Pool"])
            except ValueError:
                raise PluginError("Invalid CIDR") from None
            if not exists:
                raise PluginError("The requested subnet must match the CIDR of a configured Calico IP Pool.")
            pool_id = pool = req["Pool"]
        # The dummy gateway stops Docker from asking us for a gateway address: a Calico
        # workload's gateway is the fixed 169.254.1.1 given at Join.
        return {"PoolID": pool_id, "Pool": pool, "Data": {GATEWAY_OPTION: "0.0.0.0/0"}}

    def request_address(self, req: dict) -> dict:
        log.info("RequestAddress %s", req)
        options = req.get("Options") or {}
        if options.get("RequestAddressType") == GATEWAY_OPTION:
            raise PluginError("Calico IPAM does not support specifying a gateway.")
        pool_id = req.get("PoolID") or ""
        address = req.get("Address") or ""
        if not address:
            pools: list[IPv4Network] | None = None
            if pool_id != POOL_ID_V4:
                try:
                    net = ip_network(pool_id, strict=False)
                except ValueError:
                    raise PluginError(f"Invalid CIDR - {pool_id}: invalid CIDR address: {pool_id}") from None
                pool = self.ipam.find_pool(net) if isinstance(net, IPv4Network) else None
                if pool is None:
                    raise PluginError("The network references a Calico pool which has been deleted. "
                                      "Please re-instate the Calico pool before using the network.")
                pools = [pool.cidr]
            try:
                ips = self.ipam.auto_assign(1, pools)
            except IpamError as exc:
                raise PluginError(f"IP assignment error: {exc}") from exc
        else:
            try:
                ip = parse_ipv4(address)
            except (ValueError, IpamError) as exc:
                raise PluginError(f"IP assignment error: {exc}") from exc
            try:
                self.ipam.assign_ip(ip)
            except IpamError as exc:
                data = f"{{IP:{ip} HandleID:<nil> Attrs:map[] Hostname:{self.ipam.node}}}"
                raise PluginError(f"IP assignment error, data: {data}: {exc}") from exc
            ips = [ip]
        if len(ips) != 1:
            # What a full pool looks like to Docker: AutoAssign returns no address, no error.
            raise PluginError("Unexpected number of assigned IP addresses. "
                              f"A single address should be assigned. Got {_go_ip_list(ips)}")
        return {"Address": f"{ips[0]}/32", "Data": {}}

    def release_address(self, req: dict) -> dict:
        log.info("ReleaseAddress %s", req)
        try:
            ip = parse_ipv4(req.get("Address", ""))
            self.ipam.release(ip)
        except (ValueError, IpamError) as exc:
            raise PluginError(f"IP releasing error, ip: {req.get('Address', '')}: {exc}") from exc
        return {}


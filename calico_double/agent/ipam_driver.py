"""Docker IpamDriver `calico-ipam`, answering the way projectcalico/libnetwork-plugin does."""

from __future__ import annotations

import logging

from .ipam import Ipam, IpamError, parse_ipv4, parse_ipv4_network
from .plugin_server import Handler, PluginError

log = logging.getLogger(__name__)

POOL_ID_V4 = "CalicoPoolIPv4"
POOL_ID_V6 = "CalicoPoolIPv6"
LOCAL_ADDRESS_SPACE = "CalicoLocalAddressSpace"
GLOBAL_ADDRESS_SPACE = "CalicoGlobalAddressSpace"
GATEWAY_OPTION = "com.docker.network.gateway"


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
            pool_id, pool, gateway = POOL_ID_V6, "::/0", "::/0"
        else:
            pool_id, pool, gateway = POOL_ID_V4, "0.0.0.0/0", "0.0.0.0/0"
        if req.get("Pool"):
            try:
                requested = parse_ipv4_network(req["Pool"])
            except (ValueError, IpamError) as exc:
                raise PluginError(f"Invalid CIDR {req['Pool']}: {exc}") from exc
            if self.ipam.pool_containing(requested) is None:
                raise PluginError("The requested subnet must match the CIDR of a configured Calico IP Pool.")
            pool_id = pool = str(requested)
        # The dummy gateway in Data stops Docker from asking us for a gateway address: a
        # Calico workload's gateway is the fixed 169.254.1.1 given at Join.
        return {"PoolID": pool_id, "Pool": pool, "Data": {GATEWAY_OPTION: gateway}}

    def request_address(self, req: dict) -> dict:
        log.info("RequestAddress %s", req)
        options = req.get("Options") or {}
        if options.get("RequestAddressType") == GATEWAY_OPTION:
            raise PluginError("Calico IPAM does not support specifying a gateway.")
        pool_id = req.get("PoolID") or POOL_ID_V4
        try:
            if req.get("Address"):
                ip = parse_ipv4(req["Address"])
                self.ipam.assign_ip(ip)
            elif pool_id == POOL_ID_V4:
                ip = self.ipam.auto_assign()
            elif pool_id == POOL_ID_V6:
                raise PluginError("IPv6 address assignment is not implemented by the Calico double")
            else:
                ip = self.ipam.auto_assign([parse_ipv4_network(pool_id)])
        except IpamError as exc:
            raise PluginError(f"IP assignment error: {exc}") from exc
        return {"Address": f"{ip}/32", "Data": {}}

    def release_address(self, req: dict) -> dict:
        log.info("ReleaseAddress %s", req)
        try:
            self.ipam.release(parse_ipv4(req.get("Address", "")))
        except (ValueError, IpamError) as exc:
            raise PluginError(f"IP releasing error: {exc}") from exc
        return {}

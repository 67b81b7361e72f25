"""Docker remote-plugin requests and responses of the `calico` and `calico-ipam` drivers."""

from __future__ import annotations

import http.client
import json
import socket
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from calico_double.agent.ipam import Ipam, pool_json
from calico_double.agent.ipam_driver import IpamDriver
from calico_double.agent.network_driver import NetworkDriver, endpoint_key
from calico_double.agent.plugin_server import (
    CONTENT_TYPE,
    PluginError,
    PluginServer,
    dispatch,
)

NET_ID = "4b1f6b6d2e8c0a9f3d7e5c1b2a4f6e8d0c2b4a6f8e0d2c4b6a8f0e2d4c6b8a0f"
EP_ID = "d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"


def call(routes: dict, path: str, body: dict | None = None) -> tuple[int, dict]:
    return dispatch(routes, path, json.dumps(body or {}).encode())


@pytest.fixture
def ipam_routes(etcd) -> dict:
    etcd.put("/calico/v1/ipam/v4/pool/192.168.0.0-16", pool_json(IPv4Network("192.168.0.0/16")))
    return IpamDriver(Ipam(etcd, "node1")).routes()


@pytest.fixture
def net_routes(etcd, netdev) -> dict:
    return NetworkDriver(etcd, "node1", netdev).routes()


# -- server plumbing ---------------------------------------------------------------------------
def test_dispatch_errors() -> None:
    def refuse(_req: dict) -> dict:
        raise PluginError("nope")

    def crash(_req: dict) -> dict:
        raise KeyError("boom")

    routes = {"/A.Refuse": refuse, "/A.Crash": crash, "/A.Ok": lambda req: {"echo": req}}
    assert dispatch(routes, "/A.Missing", b"{}")[0] == 404
    assert dispatch(routes, "/A.Ok", b"{not json")[0] == 400
    assert dispatch(routes, "/A.Refuse", b"{}") == (500, {"Err": "nope"})
    status, body = dispatch(routes, "/A.Crash", b"{}")
    assert status == 500 and "boom" in body["Err"]
    assert dispatch(routes, "/A.Ok", b"") == (200, {"echo": {}})  # Docker may POST no body


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=5)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self.unix_path))


def test_http_over_unix_socket_with_keepalive(tmp_path: Path) -> None:
    path = tmp_path / "plugins" / "calico.sock"
    path.parent.mkdir()
    path.write_text("stale")  # left over by a killed agent
    server = PluginServer(path, {"/Plugin.Activate": lambda _: {"Implements": ["NetworkDriver"]}}, "calico")
    server.start()
    try:
        conn = UnixHTTPConnection(path)
        for _ in range(2):  # the same connection serves a second request
            conn.request("POST", "/Plugin.Activate", body=b"{}",
                         headers={"Accept": "application/vnd.docker.plugins.v1.2+json"})
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.getheader("Content-Type") == CONTENT_TYPE
            assert json.loads(resp.read()) == {"Implements": ["NetworkDriver"]}
        conn.close()
    finally:
        server.stop()
    assert not path.exists()


# -- IpamDriver --------------------------------------------------------------------------------
def test_ipam_handshake(ipam_routes) -> None:
    assert call(ipam_routes, "/Plugin.Activate") == (200, {"Implements": ["IpamDriver"]})
    assert call(ipam_routes, "/IpamDriver.GetCapabilities") == (200, {"RequiresMACAddress": False})
    assert call(ipam_routes, "/IpamDriver.GetDefaultAddressSpaces") == (200, {
        "LocalDefaultAddressSpace": "CalicoLocalAddressSpace",
        "GlobalDefaultAddressSpace": "CalicoGlobalAddressSpace"})


def test_request_pool_default_and_v6(ipam_routes) -> None:
    req = {"AddressSpace": "CalicoGlobalAddressSpace", "Pool": "", "SubPool": "", "Options": {}, "V6": False}
    assert call(ipam_routes, "/IpamDriver.RequestPool", req) == (200, {
        "PoolID": "CalicoPoolIPv4", "Pool": "0.0.0.0/0", "Data": {"com.docker.network.gateway": "0.0.0.0/0"}})
    status, body = call(ipam_routes, "/IpamDriver.RequestPool", {**req, "V6": True})
    assert status == 200 and body["PoolID"] == "CalicoPoolIPv6" and body["Pool"] == "::/0"


def test_request_pool_with_subnet(ipam_routes) -> None:
    status, body = call(ipam_routes, "/IpamDriver.RequestPool", {"Pool": "192.168.0.0/16"})
    assert status == 200 and body["PoolID"] == body["Pool"] == "192.168.0.0/16"
    assert body["Data"] == {"com.docker.network.gateway": "0.0.0.0/0"}
    status, body = call(ipam_routes, "/IpamDriver.RequestPool", {"Pool": "10.0.0.0/24"})
    assert status == 500 and "configured Calico IP Pool" in body["Err"]


@pytest.mark.parametrize("req, message", [
    ({"SubPool": "192.168.1.0/24"}, "sub pool"),
    ({"Options": {"foo": "bar"}}, "Arbitrary options"),
])
def test_request_pool_refusals(ipam_routes, req: dict, message: str) -> None:
    status, body = call(ipam_routes, "/IpamDriver.RequestPool", req)
    assert status == 500 and message in body["Err"]


def test_request_and_release_address(ipam_routes, etcd) -> None:
    status, body = call(ipam_routes, "/IpamDriver.RequestAddress",
                        {"PoolID": "CalicoPoolIPv4", "Address": "", "Options": {}})
    assert status == 200 and body["Address"].endswith("/32")
    ip = body["Address"].split("/")[0]
    assert call(ipam_routes, "/IpamDriver.ReleaseAddress", {"PoolID": "CalicoPoolIPv4", "Address": ip}) == (200, {})
    status, body = call(ipam_routes, "/IpamDriver.RequestAddress", {"PoolID": "CalicoPoolIPv4"})
    assert body["Address"] != f"{ip}/32"  # freed ordinals go to the back of the list


def test_request_specific_address_and_gateway(ipam_routes) -> None:
    status, body = call(ipam_routes, "/IpamDriver.RequestAddress",
                        {"PoolID": "CalicoPoolIPv4", "Address": "192.168.9.9"})
    assert (status, body) == (200, {"Address": "192.168.9.9/32", "Data": {}})
    status, body = call(ipam_routes, "/IpamDriver.RequestAddress",
                        {"PoolID": "CalicoPoolIPv4", "Address": "192.168.9.9"})
    assert status == 500 and "already assigned" in body["Err"]
    status, body = call(ipam_routes, "/IpamDriver.RequestAddress", {
        "PoolID": "CalicoPoolIPv4", "Options": {"RequestAddressType": "com.docker.network.gateway"}})
    assert status == 500 and body["Err"] == "Calico IPAM does not support specifying a gateway."


def test_request_address_from_subnet_pool_id(ipam_routes) -> None:
    status, body = call(ipam_routes, "/IpamDriver.RequestAddress", {"PoolID": "192.168.0.0/16"})
    assert status == 200 and body["Address"].startswith("192.168.")
    assert call(ipam_routes, "/IpamDriver.ReleasePool", {"PoolID": "CalicoPoolIPv4"}) == (200, {})


# -- NetworkDriver -----------------------------------------------------------------------------
CREATE_NETWORK = {
    "NetworkID": NET_ID,
    "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": {}},
    "IPv4Data": [{"AddressSpace": "CalicoGlobalAddressSpace", "Pool": "0.0.0.0/0",
                  "Gateway": "0.0.0.0/0", "AuxAddresses": None}],
    "IPv6Data": [],
}


def test_network_handshake(net_routes) -> None:
    assert call(net_routes, "/Plugin.Activate") == (200, {"Implements": ["NetworkDriver"]})
    assert call(net_routes, "/NetworkDriver.GetCapabilities") == (200, {"Scope": "global"})
    for name in ("DiscoverNew", "DiscoverDelete", "ProgramExternalConnectivity", "RevokeExternalConnectivity"):
        assert call(net_routes, f"/NetworkDriver.{name}", {"NetworkID": NET_ID}) == (200, {})
    assert call(net_routes, "/NetworkDriver.EndpointOperInfo", {"EndpointID": EP_ID}) == (200, {"Value": {}})


def test_create_and_delete_network_manage_the_profile(net_routes, etcd) -> None:
    assert call(net_routes, "/NetworkDriver.CreateNetwork", CREATE_NETWORK) == (200, {})
    base = f"/calico/v1/policy/profile/{NET_ID}"
    assert json.loads(etcd.get_value(f"{base}/tags")) == [NET_ID]
    assert json.loads(etcd.get_value(f"{base}/labels")) == {}
    rules = json.loads(etcd.get_value(f"{base}/rules"))
    assert rules["inbound_rules"] == [{"action": "allow", "src_tag": NET_ID}]
    assert rules["outbound_rules"] == [{"action": "allow"}]
    assert call(net_routes, "/NetworkDriver.CreateNetwork", CREATE_NETWORK) == (200, {})  # idempotent
    assert call(net_routes, "/NetworkDriver.DeleteNetwork", {"NetworkID": NET_ID}) == (200, {})
    assert etcd.get_value(f"{base}/tags") is None


@pytest.mark.parametrize("change, message", [
    ({"IPv4Data": [{"Gateway": "192.168.1.1/24"}]}, "Non-Calico IPAM driver"),
    ({"Options": {"com.docker.network.internal": True}}, "does not support the flag --internal"),
    ({"Options": {"com.docker.network.generic": {"mtu": "1400"}}}, "does not support the flag mtu"),
])
def test_create_network_refusals(net_routes, change: dict, message: str) -> None:
    status, body = call(net_routes, "/NetworkDriver.CreateNetwork", {**CREATE_NETWORK, **change})
    assert status == 500 and message in body["Err"]


def test_create_endpoint_writes_the_workload_endpoint(net_routes, etcd) -> None:
    req = {"NetworkID": NET_ID, "EndpointID": EP_ID,
           "Interface": {"Address": "192.168.166.128/32", "AddressIPv6": "", "MacAddress": ""}, "Options": {}}
    assert call(net_routes, "/NetworkDriver.CreateEndpoint", req) == (
        200, {"Interface": {"MacAddress": "ee:ee:ee:ee:ee:ee"}})
    endpoint = json.loads(etcd.get_value(endpoint_key("node1", EP_ID)))
    assert endpoint_key("node1", EP_ID) == (
        f"/calico/v1/host/node1/workload/libnetwork/libnetwork/endpoint/{EP_ID}")
    assert endpoint["state"] == "active"
    assert endpoint["name"] == "cali" + EP_ID[:11]
    assert endpoint["mac"] == "ee:ee:ee:ee:ee:ee"
    assert endpoint["profile_ids"] == [NET_ID]
    assert endpoint["ipv4_nets"] == ["192.168.166.128/32"]
    assert endpoint["ipv6_nets"] == []


def test_create_endpoint_keeps_a_user_mac_and_needs_an_address(net_routes) -> None:
    req = {"NetworkID": NET_ID, "EndpointID": EP_ID,
           "Interface": {"Address": "192.168.166.129/32", "MacAddress": "02:42:c0:a8:00:02"}}
    assert call(net_routes, "/NetworkDriver.CreateEndpoint", req) == (200, {})
    status, body = call(net_routes, "/NetworkDriver.CreateEndpoint",
                        {"NetworkID": NET_ID, "EndpointID": EP_ID, "Interface": {}})
    assert status == 500 and body["Err"] == "No address assigned for endpoint"


def test_join_sets_up_veth_route_and_proxy_arp(net_routes, netdev) -> None:
    call(net_routes, "/NetworkDriver.CreateEndpoint", {
        "NetworkID": NET_ID, "EndpointID": EP_ID, "Interface": {"Address": "192.168.166.128/32"}})
    status, body = call(net_routes, "/NetworkDriver.Join", {
        "NetworkID": NET_ID, "EndpointID": EP_ID, "SandboxKey": "/var/run/docker/netns/abc", "Options": {}})
    host_if, temp_if = "cali" + EP_ID[:11], "temp" + EP_ID[:11]
    assert status == 200
    assert body == {
        "InterfaceName": {"SrcName": temp_if, "DstPrefix": "cali"},
        "Gateway": "169.254.1.1",
        "StaticRoutes": [{"Destination": "169.254.1.1/32", "RouteType": 1, "NextHop": ""}],
        "DisableGatewayService": True,
    }
    assert len(host_if) <= 15 and len(temp_if) <= 15  # Linux interface name limit
    assert ("create_veth", host_if, temp_if, "ee:ee:ee:ee:ee:ee", None) in netdev.calls
    assert ("sysctl", f"net/ipv4/conf/{host_if}/proxy_arp", "1") in netdev.calls
    assert ("sysctl", f"net/ipv4/neigh/{host_if}/proxy_delay", "0") in netdev.calls
    assert ("replace_host_route", "192.168.166.128", host_if) in netdev.calls


def test_leave_and_delete_endpoint_clean_up(net_routes, netdev, etcd) -> None:
    call(net_routes, "/NetworkDriver.CreateEndpoint", {
        "NetworkID": NET_ID, "EndpointID": EP_ID, "Interface": {"Address": "192.168.166.128/32"}})
    host_if = "cali" + EP_ID[:11]
    assert call(net_routes, "/NetworkDriver.Leave", {"NetworkID": NET_ID, "EndpointID": EP_ID}) == (200, {})
    assert ("delete_host_route", "192.168.166.128", host_if) in netdev.calls
    assert ("delete_link", host_if) in netdev.calls
    assert call(net_routes, "/NetworkDriver.DeleteEndpoint", {"NetworkID": NET_ID, "EndpointID": EP_ID}) == (200, {})
    assert etcd.get_value(endpoint_key("node1", EP_ID)) is None
    # Deleting again (Docker retries after errors) still succeeds.
    assert call(net_routes, "/NetworkDriver.DeleteEndpoint", {"NetworkID": NET_ID, "EndpointID": EP_ID}) == (200, {})

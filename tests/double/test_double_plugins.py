"""Docker remote-plugin requests and responses of the `calico` and `calico-ipam` drivers."""

from __future__ import annotations

import http.client
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from ipaddress import IPv4Network
from pathlib import Path

import pytest
from double_kit import FakeEtcd

from calico_double.agent.docker_api import DockerClient, DockerError
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


class DirEtcd(FakeEtcd):
    """FakeEtcd plus etcd's empty directories (created and deleted with dir=true)."""

    def __init__(self) -> None:
        super().__init__()
        self.dirs: set[str] = set()

    def _has_children(self, key: str) -> bool:
        prefix = key.rstrip("/") + "/"
        return any(k.startswith(prefix) for k in self.data) or any(d.startswith(prefix) for d in self.dirs)

    def create_dir(self, key: str) -> bool:
        if key in self.dirs or key in self.data or self._has_children(key):
            return False
        self.dirs.add(key)
        return True

    def delete_empty_dir(self, key: str) -> bool:
        if self._has_children(key):
            return False
        if key in self.dirs:
            self.dirs.discard(key)
            return True
        return False

    def delete(self, key: str, *, recursive: bool = False, prev_index: int | None = None) -> None:
        super().delete(key, recursive=recursive, prev_index=prev_index)
        # Deleting a key leaves its parent directories in etcd.
        parts = key.strip("/").split("/")
        for i in range(1, len(parts)):
            self.dirs.add("/" + "/".join(parts[:i]))


class FakeDocker:
    """Docker's NetworkInspect: network id -> name."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.asked: list[str] = []

    def network_name(self, network_id: str) -> str:
        self.asked.append(network_id)
        if network_id not in self.names:
            raise DockerError(f"Error response from daemon: network {network_id} not found")
        return self.names[network_id]


NET_NAME = "calico-net1"


@pytest.fixture
def docker() -> FakeDocker:
    return FakeDocker({NET_ID: NET_NAME})


@pytest.fixture
def store() -> DirEtcd:
    return DirEtcd()


@pytest.fixture
def net_routes(store, netdev, docker) -> dict:
    return NetworkDriver(store, "node1", netdev, docker=docker).routes()


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
    # libnetwork-plugin@v1.1.0 driver/ipam_driver.go refuses IPv6 networks outright.
    assert call(ipam_routes, "/IpamDriver.RequestPool", {**req, "V6": True}) == (500, {"Err": "IPv6 isn't supported"})


def test_request_pool_with_subnet_must_equal_a_pool(ipam_routes) -> None:
    # libnetwork-plugin@v1.1.0 driver/ipam_driver.go:86 ("Invalid CIDR"), :93 (must match a pool's CIDR).
    status, body = call(ipam_routes, "/IpamDriver.RequestPool", {"Pool": "192.168.0.0/16"})
    assert status == 200 and body["PoolID"] == body["Pool"] == "192.168.0.0/16"
    assert body["Data"] == {"com.docker.network.gateway": "0.0.0.0/0"}
    refused = (500, {"Err": "The requested subnet must match the CIDR of a configured Calico IP Pool."})
    assert call(ipam_routes, "/IpamDriver.RequestPool", {"Pool": "192.168.7.0/24"}) == refused  # inside, not equal
    assert call(ipam_routes, "/IpamDriver.RequestPool", {"Pool": "10.0.0.0/24"}) == refused
    assert call(ipam_routes, "/IpamDriver.RequestPool", {"Pool": "bogus"}) == (500, {"Err": "Invalid CIDR"})


@pytest.mark.parametrize("req, message", [
    ({"SubPool": "192.168.1.0/24"}, "Calico IPAM does not support sub pool configuration on 'docker create network'. "
     "Calico IP Pools should be configured first and IP assignment is from those pre-configured pools."),
    ({"Options": {"foo": "bar"}}, "Arbitrary options are not supported"),
])
def test_request_pool_refusals(ipam_routes, req: dict, message: str) -> None:
    # libnetwork-plugin@v1.1.0 driver/ipam_driver.go:55 (sub pool), :65 (arbitrary options).
    assert call(ipam_routes, "/IpamDriver.RequestPool", req) == (500, {"Err": message})


def test_request_and_release_address(ipam_routes, etcd) -> None:
    status, body = call(ipam_routes, "/IpamDriver.RequestAddress",
                        {"PoolID": "CalicoPoolIPv4", "Address": "", "Options": {}})
    assert (status, body) == (200, {"Address": "192.168.166.128/32", "Data": {}})  # node1's first block
    assert etcd.get_value("/calico/ipam/v2/host/node1/ipv4/block/192.168.166.128-26") == "{}"
    ip = body["Address"].split("/")[0]
    assert call(ipam_routes, "/IpamDriver.ReleaseAddress", {"PoolID": "CalicoPoolIPv4", "Address": ip}) == (200, {})
    assert call(ipam_routes, "/IpamDriver.ReleaseAddress", {"PoolID": "CalicoPoolIPv4", "Address": ip}) == (200, {})
    status, body = call(ipam_routes, "/IpamDriver.RequestAddress", {"PoolID": "CalicoPoolIPv4"})
    assert body["Address"] == "192.168.166.129/32"  # freed ordinals go to the back of the list


def test_a_full_pool_is_upstreams_unexpected_number_error(etcd) -> None:
    etcd.put("/calico/v1/ipam/v4/pool/10.10.0.0-26", pool_json(IPv4Network("10.10.0.0/26")))
    routes = IpamDriver(Ipam(etcd, "node1")).routes()
    for _ in range(64):
        assert call(routes, "/IpamDriver.RequestAddress", {"PoolID": "CalicoPoolIPv4"})[0] == 200
    assert call(routes, "/IpamDriver.RequestAddress", {"PoolID": "CalicoPoolIPv4"}) == (500, {
        "Err": "Unexpected number of assigned IP addresses. A single address should be assigned. Got []"})


def test_request_specific_address_and_gateway(ipam_routes) -> None:
    status, body = call(ipam_routes, "/IpamDriver.RequestAddress",
                        {"PoolID": "CalicoPoolIPv4", "Address": "192.168.9.9"})
    assert (status, body) == (200, {"Address": "192.168.9.9/32", "Data": {}})
    assert call(ipam_routes, "/IpamDriver.RequestAddress", {"PoolID": "CalicoPoolIPv4", "Address": "192.168.9.9"}) == (
        500, {"Err": "IP assignment error, data: {IP:192.168.9.9 HandleID:<nil> Attrs:map[] Hostname:node1}: "
                     "Address already assigned in block"})
    status, body = call(ipam_routes, "/IpamDriver.RequestAddress", {
        "PoolID": "CalicoPoolIPv4", "Options": {"RequestAddressType": "com.docker.network.gateway"}})
    assert status == 500 and body["Err"] == "Calico IPAM does not support specifying a gateway."


def test_request_address_from_subnet_pool_id(ipam_routes, etcd) -> None:
    status, body = call(ipam_routes, "/IpamDriver.RequestAddress", {"PoolID": "192.168.0.0/16"})
    assert (status, body["Address"]) == (200, "192.168.166.128/32")
    assert call(ipam_routes, "/IpamDriver.ReleasePool", {"PoolID": "CalicoPoolIPv4"}) == (200, {})
    etcd.delete("/calico/v1/ipam/v4/pool/192.168.0.0-16")
    assert call(ipam_routes, "/IpamDriver.RequestAddress", {"PoolID": "192.168.0.0/16"}) == (500, {
        "Err": "The network references a Calico pool which has been deleted. "
               "Please re-instate the Calico pool before using the network."})


# -- NetworkDriver -----------------------------------------------------------------------------
CREATE_NETWORK = {
    "NetworkID": NET_ID,
    "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": {}},
    "IPv4Data": [{"AddressSpace": "CalicoGlobalAddressSpace", "Pool": "0.0.0.0/0",
                  "Gateway": "0.0.0.0/0", "AuxAddresses": None}],
    "IPv6Data": [],
}
CREATE_ENDPOINT = {"NetworkID": NET_ID, "EndpointID": EP_ID,
                   "Interface": {"Address": "192.168.166.128/32", "AddressIPv6": "", "MacAddress": ""}, "Options": {}}
PROFILE = f"/calico/v1/policy/profile/{NET_NAME}"


def test_network_handshake(net_routes) -> None:
    assert call(net_routes, "/Plugin.Activate") == (200, {"Implements": ["NetworkDriver"]})
    assert call(net_routes, "/NetworkDriver.GetCapabilities") == (200, {"Scope": "global"})
    for name in ("DiscoverNew", "DiscoverDelete", "ProgramExternalConnectivity", "RevokeExternalConnectivity"):
        assert call(net_routes, f"/NetworkDriver.{name}", {"NetworkID": NET_ID}) == (200, {})
    assert call(net_routes, "/NetworkDriver.EndpointOperInfo", {"EndpointID": EP_ID}) == (200, {"Value": {}})


def test_networks_write_nothing_and_the_profile_outlives_the_network(net_routes, store, docker) -> None:
    assert call(net_routes, "/NetworkDriver.CreateNetwork", CREATE_NETWORK) == (200, {})
    assert store.data == {} and docker.asked == []  # no profile at CreateNetwork
    assert call(net_routes, "/NetworkDriver.CreateEndpoint", CREATE_ENDPOINT)[0] == 200
    assert docker.asked == [NET_ID]
    # libnetwork-plugin@v1.1.0: profile named after the network NAME, exact values (calico-2.6-facts.md).
    assert store.get_value(f"{PROFILE}/tags") == '["calico-net1"]'
    assert store.get_value(f"{PROFILE}/labels") == "{}"
    assert store.get_value(f"{PROFILE}/rules") == (
        '{"inbound_rules":[{"action":"allow","src_tag":"calico-net1"}],"outbound_rules":[{"action":"allow"}]}')
    assert store.get_value(f"/calico/v1/policy/profile/{NET_ID}/tags") is None
    assert call(net_routes, "/NetworkDriver.DeleteNetwork", {"NetworkID": NET_ID}) == (200, {})
    assert store.get_value(f"{PROFILE}/tags") == '["calico-net1"]'  # never deleted


def test_an_existing_profile_is_left_as_it_is(net_routes, store) -> None:
    store.put(f"{PROFILE}/tags", '["calico-net1","extra"]')
    assert call(net_routes, "/NetworkDriver.CreateEndpoint", CREATE_ENDPOINT)[0] == 200
    assert store.get_value(f"{PROFILE}/tags") == '["calico-net1","extra"]'
    assert store.get_value(f"{PROFILE}/rules") is None  # Create stops at the first existing key


# libnetwork-plugin@v1.1.0 driver/network_driver.go:96, 105, 116: the refusals' words.
@pytest.mark.parametrize("change, message", [
    ({"IPv4Data": [{"Gateway": "192.168.1.1/24"}]}, "Non-Calico IPAM driver is used"),
    ({"Options": {"com.docker.network.internal": True}}, "Calico driver does not support the --internal flag."),
    ({"Options": {"com.docker.network.generic": {"mtu": "1400"}}}, "Arbitrary options are not supported"),
])
def test_create_network_refusals(net_routes, change: dict, message: str) -> None:
    assert call(net_routes, "/NetworkDriver.CreateNetwork", {**CREATE_NETWORK, **change}) == (500, {"Err": message})


def test_create_endpoint_writes_the_workload_endpoint(net_routes, store) -> None:
    assert call(net_routes, "/NetworkDriver.CreateEndpoint", CREATE_ENDPOINT) == (
        200, {"Interface": {"Address": "", "AddressIPv6": "", "MacAddress": "EE:EE:EE:EE:EE:EE"}})
    key = f"/calico/v1/host/node1/workload/libnetwork/libnetwork/endpoint/{EP_ID}"
    assert endpoint_key("node1", EP_ID) == key
    # The exact value of calico-2.6-facts.md (libnetwork-plugin v1.1.0): no labels.
    assert store.get_value(key) == (
        '{"state":"active","name":"cali' + EP_ID[:11] + '","mac":"ee:ee:ee:ee:ee:ee",'
        '"profile_ids":["calico-net1"],"ipv4_nets":["192.168.166.128/32"],"ipv6_nets":[]}')
    status, body = call(net_routes, "/NetworkDriver.CreateEndpoint", CREATE_ENDPOINT)
    assert status == 500 and "Workload endpoints creation error" in body["Err"]


def test_create_endpoint_errors_and_a_user_mac(net_routes, store) -> None:
    user = {**CREATE_ENDPOINT, "Interface": {"Address": "192.168.166.129/32", "MacAddress": "02:42:C0:A8:00:02"}}
    assert call(net_routes, "/NetworkDriver.CreateEndpoint", user) == (
        200, {"Interface": {"Address": "", "AddressIPv6": "", "MacAddress": ""}})
    assert json.loads(store.get_value(endpoint_key("node1", EP_ID)))["mac"] == "02:42:c0:a8:00:02"
    assert call(net_routes, "/NetworkDriver.CreateEndpoint", {"NetworkID": NET_ID, "EndpointID": EP_ID,
                                                              "Interface": {"AddressIPv6": "fd00::5/64"}}) == (
        500, {"Err": "No address assigned for endpoint"})
    other = {**CREATE_ENDPOINT, "NetworkID": "f" * 64, "EndpointID": "a" * 64}
    status, body = call(net_routes, "/NetworkDriver.CreateEndpoint", other)
    assert status == 500 and body["Err"].startswith(f"Network {'f' * 64} inspection error: ")
    assert store.get_value(endpoint_key("node1", "a" * 64)) is None


def test_endpoints_are_keyed_by_the_plugin_host_name(store, netdev, docker) -> None:
    routes = NetworkDriver(store, "centos-host", netdev, docker=docker).routes()
    assert call(routes, "/NetworkDriver.CreateEndpoint", CREATE_ENDPOINT)[0] == 200
    assert store.get_value(endpoint_key("centos-host", EP_ID)) is not None


def test_join_creates_the_veth_only(net_routes, netdev) -> None:
    call(net_routes, "/NetworkDriver.CreateEndpoint", CREATE_ENDPOINT)
    status, body = call(net_routes, "/NetworkDriver.Join", {
        "NetworkID": NET_ID, "EndpointID": EP_ID, "SandboxKey": "/var/run/docker/netns/abc", "Options": {}})
    host_if, temp_if = "cali" + EP_ID[:11], "temp" + EP_ID[:11]
    assert status == 200
    assert body == {
        "InterfaceName": {"SrcName": temp_if, "DstPrefix": "cali"},
        "Gateway": "169.254.1.1",
        "GatewayIPv6": "",
        "StaticRoutes": [{"Destination": "169.254.1.1/32", "RouteType": 1, "NextHop": ""}],
        "DisableGatewayService": False,
    }
    assert len(host_if) <= 15 and len(temp_if) <= 15  # Linux interface name limit
    # The host route, proxy ARP and sysctls are felix's (calico-2.6-facts.md, Join).
    assert netdev.calls == [("create_veth", host_if, temp_if, "ee:ee:ee:ee:ee:ee", None)]


def test_leave_removes_the_veth_and_delete_endpoint_the_key(net_routes, netdev, store) -> None:
    call(net_routes, "/NetworkDriver.CreateEndpoint", CREATE_ENDPOINT)
    host_if = "cali" + EP_ID[:11]
    assert call(net_routes, "/NetworkDriver.Leave", {"NetworkID": NET_ID, "EndpointID": EP_ID}) == (200, {})
    assert netdev.calls == [("delete_link", host_if)]
    assert call(net_routes, "/NetworkDriver.DeleteEndpoint", {"NetworkID": NET_ID, "EndpointID": EP_ID}) == (200, {})
    assert netdev.calls == [("delete_link", host_if)]
    assert store.get_value(endpoint_key("node1", EP_ID)) is None
    # As libcalico-go: the emptied endpoint/ and workload directories go too, the host's stays.
    assert "/calico/v1/host/node1/workload/libnetwork/libnetwork" not in store.dirs
    assert "/calico/v1/host/node1/workload/libnetwork/libnetwork/endpoint" not in store.dirs
    assert "/calico/v1/host/node1/workload/libnetwork" in store.dirs
    status, body = call(net_routes, "/NetworkDriver.DeleteEndpoint", {"NetworkID": NET_ID, "EndpointID": EP_ID})
    assert status == 500 and body["Err"] == (
        f"Endpoint {EP_ID} removal error: resource does not exist: WorkloadEndpoint(node=node1, "
        f"orchestrator=libnetwork, workload=libnetwork, name={EP_ID})")


# -- the Docker API client ---------------------------------------------------------------------
class _DockerStub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    paths: list[str] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        if self.path == f"/networks/{NET_ID}":
            status, body = 200, {"Name": NET_NAME, "Id": NET_ID, "Driver": "calico"}
        else:
            status, body = 404, {"message": f"network {self.path.rsplit('/', 1)[-1]} not found"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def address_string(self) -> str:
        return "docker"

    def log_message(self, *_args: object) -> None:
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        sock, _ = super().get_request()
        return sock, ("", 0)


@pytest.fixture
def docker_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "docker.sock"
    _DockerStub.paths = []
    server = _UnixServer(str(path), _DockerStub)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


def test_docker_client_inspects_networks_over_the_unix_socket(docker_socket: Path) -> None:
    client = DockerClient(docker_socket)
    assert client.network_name(NET_ID) == NET_NAME
    assert _DockerStub.paths == [f"/networks/{NET_ID}"]
    with pytest.raises(DockerError, match="^Error response from daemon: network nope not found$"):
        client.network_name("nope")
    assert DockerClient.from_env({"DOCKER_HOST": f"unix://{docker_socket}"}).socket_path == docker_socket
    assert DockerClient.from_env({}).socket_path == Path("/var/run/docker.sock")


def test_docker_client_without_a_daemon(tmp_path: Path) -> None:
    missing = tmp_path / "none.sock"
    with pytest.raises(DockerError, match=f"^Cannot connect to the Docker daemon at unix://{missing}"):
        DockerClient(missing).network_name(NET_ID)

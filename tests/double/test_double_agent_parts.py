"""The etcd client, settings, node registration and the felix stand-in of the Calico double."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from ipaddress import IPv4Interface
from typing import ClassVar

import pytest

from calico_double.agent.config import Config, ConfigError
from calico_double.agent.etcd import (
    EtcdClient,
    EtcdConflict,
    EtcdError,
    EtcdKeyNotFound,
    EtcdUnavailable,
)
from calico_double.agent.felix import choose_iptables
from calico_double.agent.registration import (
    NodeConflict,
    Registration,
    check_conflicting_nodes,
    configure_ip_pools,
    ensure_default_config,
    register_node,
)


# -- etcd client against a stub v2 server --------------------------------------------------------
class StubEtcd(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str, str]]] = []

    def _answer(self, status: int, payload: dict | None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Etcd-Index", "41")  # etcd sends the store's index with every answer
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, ""))
        if self.path == "/version":
            self._answer(200, {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"})
        elif self.path == "/v2/keys/":
            self._answer(200, {"action": "get", "node": {"dir": True}})
        elif self.path.startswith("/v2/keys/present"):
            self._answer(200, {"action": "get", "node": {"key": "/present", "value": "v", "modifiedIndex": 7}})
        elif self.path.startswith("/v2/keys/nov2"):
            self._answer(404, None, b"404 page not found\n")
        else:
            self._answer(404, {"errorCode": 100, "message": "Key not found", "cause": self.path})

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.requests.append(("PUT", self.path, body))
        if "prevExist=false" in self.path:
            self._answer(412, {"errorCode": 105, "message": "Key already exists"})
        elif "prevIndex=" in self.path:
            self._answer(412, {"errorCode": 101, "message": "Compare failed"})
        else:
            value = urllib.parse.parse_qs(body)["value"][0]
            self._answer(200, {"action": "set", "node": {"key": "/k", "value": value, "modifiedIndex": 9}})

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def stub_etcd() -> Iterator[str]:
    StubEtcd.requests = []
    server = HTTPServer(("127.0.0.1", 0), StubEtcd)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_fails_over_to_the_next_endpoint(stub_etcd: str) -> None:
    client = EtcdClient([closed_port(), stub_etcd], timeout=2)
    assert client.get("/present").value == "v"
    assert client.endpoints[client._preferred] == stub_etcd


def test_no_endpoint_answering() -> None:
    with pytest.raises(EtcdUnavailable, match="no etcd endpoint answered"):
        EtcdClient([closed_port()], timeout=1).get("/x")


def test_error_codes_map_to_exceptions(stub_etcd: str) -> None:
    client = EtcdClient([stub_etcd])
    with pytest.raises(EtcdKeyNotFound):
        client.get("/absent")
    assert client.get_value("/absent", "dflt") == "dflt"
    with pytest.raises(EtcdConflict):
        client.create("/k", "v")
    with pytest.raises(EtcdConflict):
        client.set("/k", "v", prev_index=3)
    with pytest.raises(EtcdError, match="enable-v2"):
        client.get("/nov2")


def test_a_value_comes_with_the_store_index_present_or_not(stub_etcd: str) -> None:
    client = EtcdClient([stub_etcd])
    assert client.get_value_and_index("/present") == ("v", 41)
    assert client.get_value_and_index("/absent") == (None, 41)
    with pytest.raises(EtcdError, match="HTTP 404"):
        client.get_value_and_index("/nov2")
    assert client.snapshot("/present") == ([("/present", "v")], 41)  # the same read, recursive
    assert client.snapshot("/absent") == ([], 41)
    assert StubEtcd.requests[-1][1] == "/v2/keys/absent?recursive=true"


def test_set_sends_form_value_and_cas_params(stub_etcd: str) -> None:
    client = EtcdClient([stub_etcd])
    assert client.set("/calico/v1/Ready", "true").modified_index == 9
    method, path, body = StubEtcd.requests[-1]
    assert (method, path, body) == ("PUT", "/v2/keys/calico/v1/Ready", "value=true")
    with pytest.raises(EtcdConflict):
        client.set("/k", "x", prev_index=5)
    assert StubEtcd.requests[-1][1] == "/v2/keys/k?prevIndex=5"
    assert client.wait_until_ready(1)["etcdserver"] == "3.4.23"


# -- settings ------------------------------------------------------------------------------------
GUIDE_ENV = {
    "NODENAME": "node1", "IP": "192.168.223.131", "IP6": "", "CALICO_NETWORKING_BACKEND": "bird",
    "AS": "", "NO_DEFAULT_POOLS": "", "CALICO_LIBNETWORK_ENABLED": "true",
    "ETCD_ENDPOINTS": "http://192.168.223.131:2379,http://192.168.223.130:2379",
    "ETCD_CA_CERT_FILE": "", "ETCD_CERT_FILE": "", "ETCD_KEY_FILE": "",
}


def test_config_from_the_guides_environment() -> None:
    cfg = Config.from_env(GUIDE_ENV)
    assert cfg.nodename == "node1" and cfg.ip == "192.168.223.131"
    assert cfg.ip6 is None and cfg.as_num is None and cfg.etcd_ca_file is None
    assert cfg.libnetwork_enabled and not cfg.no_default_pools
    assert cfg.etcd_endpoints == ["http://192.168.223.131:2379", "http://192.168.223.130:2379"]
    assert str(cfg.bird_socket) == "/var/run/calico/bird.ctl"


def test_config_rejects_unusable_values() -> None:
    with pytest.raises(ConfigError):
        Config.from_env({**GUIDE_ENV, "AS": "not-a-number"})
    with pytest.raises(ConfigError, match="gobgp"):
        Config.from_env({**GUIDE_ENV, "CALICO_NETWORKING_BACKEND": "gobgp"})
    assert Config.from_env({**GUIDE_ENV, "AS": "64999"}).as_num == 64999


# -- registration ---------------------------------------------------------------------------------
def test_cluster_config_and_default_pool(etcd, tmp_path) -> None:
    etcd.put("/calico/bgp/v1/global/as_num", "65000")  # set by an admin: must survive
    etcd.create_dir = lambda _key: True
    ensure_default_config(etcd, "node1")
    configure_ip_pools(etcd, Config.from_env(GUIDE_ENV), proc_sys=tmp_path)
    assert etcd.get_value("/calico/v1/config/CalicoVersion") == "v2.6.1"
    assert etcd.get_value("/calico/bgp/v1/global/as_num") == "65000"
    assert etcd.get_value("/calico/bgp/v1/global/node_mesh") == '{"enabled":true}'
    # startup.go@v2.6.1: NAT outgoing defaults to true (CALICO_IPV4POOL_NAT_OUTGOING).
    assert etcd.get_value("/calico/v1/ipam/v4/pool/192.168.0.0-16") == (
        '{"cidr":"192.168.0.0/16","ipip":"","ipip_mode":"","masquerade":true,"ipam":true,"disabled":false}')


def test_no_default_pools(etcd, tmp_path) -> None:
    configure_ip_pools(etcd, Config.from_env({**GUIDE_ENV, "NO_DEFAULT_POOLS": "true"}), proc_sys=tmp_path)
    assert etcd.children("/calico/v1/ipam/v4/pool") == []


def test_register_node_and_as_override(etcd) -> None:
    register_node(etcd, Registration("node1", IPv4Interface("192.168.223.131/24"), None, 64999))
    assert etcd.get_value("/calico/v1/host/node1/metadata") == "{}"
    assert etcd.get_value("/calico/bgp/v1/host/node1/ip_addr_v4") == "192.168.223.131"
    assert etcd.get_value("/calico/bgp/v1/host/node1/network_v4") == "192.168.223.0/24"
    assert etcd.get_value("/calico/bgp/v1/host/node1/as_num") == "64999"
    register_node(etcd, Registration("node1", IPv4Interface("192.168.223.131/32"), None, None))
    assert etcd.get_value("/calico/bgp/v1/host/node1/as_num") is None
    assert etcd.get_value("/calico/bgp/v1/host/node1/network_v4") == "192.168.223.131/32"


def test_same_ip_under_another_name_is_refused(etcd, caplog) -> None:
    caplog.set_level(logging.INFO)
    register_node(etcd, Registration("node1", IPv4Interface("192.168.223.131/24"), None, None))
    with pytest.raises(NodeConflict):
        check_conflicting_nodes(etcd, Registration("node9", IPv4Interface("192.168.223.131/24"), None, None))
    # startup.go@v2.6.1 checkConflictingNodes' words.
    assert "Calico node 'node1' is already using the IPv4 address 192.168.223.131:" in caplog.messages
    assert " -  Check the node configuration to remove the IP address conflict" in caplog.messages


# -- felix stand-in ------------------------------------------------------------------------------
class FakeRunner:
    def __init__(self, present: bool = False, legacy_rules: int = 0, nft_rules: int = 3) -> None:
        self.present = present
        self.saves = {"iptables-legacy-save": legacy_rules, "iptables-nft-save": nft_rules}
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess:
        self.calls.append(list(argv))
        if argv[0] in self.saves:
            return subprocess.CompletedProcess(argv, 0, "*filter\n" + "-A FORWARD -j X\n" * self.saves[argv[0]], "")
        if "-C" in argv:
            return subprocess.CompletedProcess(argv, 0 if self.present else 1, "", "")
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_iptables_backend_follows_the_host() -> None:
    assert choose_iptables(FakeRunner(legacy_rules=10, nft_rules=0)) == "iptables-legacy"
    assert choose_iptables(FakeRunner(legacy_rules=0, nft_rules=4)) == "iptables-nft"


def test_sysctl_write_is_skipped_when_already_set(tmp_path) -> None:
    from calico_double.agent.netdev import CommandError, NetDev

    target = tmp_path / "net/ipv4/ip_forward"
    target.parent.mkdir(parents=True)
    target.write_text("1\n")
    netdev = NetDev(proc_sys=tmp_path)
    netdev.write_sysctl("net/ipv4/ip_forward", "1")  # no write needed
    with pytest.raises(CommandError, match="writable /proc/sys"):
        netdev.write_sysctl("net/ipv4/conf/cali0/proxy_arp", "1")


def test_autodetect_skips_docker_and_loopback_interfaces() -> None:
    from calico_double.agent.netdev import NetDev

    out = ("1: lo    inet 127.0.0.1/8 scope host lo\n"
           "3: eth1@if9    inet 192.168.223.131/24 brd 192.168.223.255 scope global eth1\n"
           "5: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\n")
    netdev = NetDev(runner=lambda argv: subprocess.CompletedProcess(argv, 0, out, ""))
    assert netdev.autodetect_ipv4() == ("eth1", IPv4Interface("192.168.223.131/24"))

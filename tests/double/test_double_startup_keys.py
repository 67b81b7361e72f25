"""The etcd keys calico/node v2.6.1's startup writes, and its address autodetection.

Expected values: calico-2.6-facts.md ("Pools and cluster keys written by startup") and
projectcalico/calico@v2.6.1:calico_node/startup/startup.go.
"""

from __future__ import annotations

import logging
import re
import subprocess
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest
from double_kit import FakeEtcd

from calico_double.agent.config import Config
from calico_double.agent.etcd import EtcdUnavailable
from calico_double.agent.netdev import CommandError, NetDev
from calico_double.agent.registration import NodeConflict, StartupError, read_node, start_node

ENV = {"NODENAME": "node1", "HOSTNAME": "node1", "IP": "192.168.223.131", "IP6": "",
       "CALICO_NETWORKING_BACKEND": "bird", "AS": "", "NO_DEFAULT_POOLS": "",
       "ETCD_ENDPOINTS": "http://192.168.223.131:2379"}
V4_POOL = "/calico/v1/ipam/v4/pool/192.168.0.0-16"
V6_POOL = "/calico/v1/ipam/v6/pool/fd80:24e2:f998:72d6::-64"

# A VM as in the guide: eth0 NAT (10.0.2.15), eth1 private, docker0; `ip -o addr show` order.
IP_ADDR_V4 = """1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic eth0\\       valid_lft 86000sec
3: eth1    inet 192.168.223.131/24 brd 192.168.223.255 scope global eth1\\       valid_lft forever
4: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\\       valid_lft forever
"""


class DirEtcd(FakeEtcd):
    """FakeEtcd plus etcd's empty directories (PUT dir=true&prevExist=false)."""

    def __init__(self) -> None:
        super().__init__()
        self.dirs: list[str] = []

    def create_dir(self, key: str) -> bool:
        if key in self.dirs or any(k.startswith(key + "/") for k in self.data):
            return False
        self.dirs.append(key)
        return True


class Addresses:
    """NetDev over a canned `ip -o addr show`."""

    def __init__(self, v4: str = IP_ADDR_V4, v6: str = "") -> None:
        self.out = {"-4": v4, "-6": v6}

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(argv, 0, self.out.get(argv[1], ""), "")


@pytest.fixture
def store() -> DirEtcd:
    return DirEtcd()


@pytest.fixture
def proc_sys(tmp_path: Path) -> Path:
    (tmp_path / "net/ipv6").mkdir(parents=True)
    return tmp_path


def start(store: DirEtcd, proc_sys: Path, netdev: NetDev | None = None, **env: str):
    cfg = Config.from_env({**ENV, **env})
    return start_node(cfg, store, netdev or NetDev(runner=Addresses()), proc_sys)


def test_first_start_writes_calicos_keys(store, proc_sys, caplog) -> None:
    caplog.set_level(logging.INFO)
    start(store, proc_sys)
    values = {key: value for key, (value, _) in store.data.items()}
    guid = values.pop("/calico/v1/config/ClusterGUID")
    assert re.fullmatch(r"[0-9a-f]{32}", guid)
    assert values == {
        "/calico/v1/host/node1/metadata": "{}",
        "/calico/v1/host/node1/bird_ip": "192.168.223.131",
        "/calico/bgp/v1/host/node1/ip_addr_v4": "192.168.223.131",
        "/calico/bgp/v1/host/node1/ip_addr_v6": "",
        "/calico/bgp/v1/host/node1/network_v4": "192.168.223.131/32",  # IP without a mask
        V4_POOL: '{"cidr":"192.168.0.0/16","ipip":"","ipip_mode":"","masquerade":true,"ipam":true,"disabled":false}',
        V6_POOL: ('{"cidr":"fd80:24e2:f998:72d6::/64","ipip":"","ipip_mode":"","masquerade":false,'
                  '"ipam":true,"disabled":false}'),
        "/calico/v1/config/ReportingIntervalSecs": "0",
        "/calico/v1/config/LogSeverityScreen": "info",
        "/calico/v1/host/node1/config/DefaultEndpointToHostAction": "RETURN",
        "/calico/v1/config/CalicoVersion": "v2.6.1",
        "/calico/bgp/v1/global/node_mesh": '{"enabled":true}',
        "/calico/bgp/v1/global/as_num": "64512",
        "/calico/bgp/v1/global/loglevel": "info",
        "/calico/v1/Ready": "true",
    }  # and never InterfacePrefix
    assert store.dirs == ["/calico/bgp/v1/global/custom_filters/v4",
                          "/calico/bgp/v1/global/custom_filters/v6", "/calico/ipam/v2/host/node1/ipv4/block",
                          "/calico/ipam/v2/host/node1/ipv6/block"]  # the pool dirs hold the pools
    assert "Using IPv4 address from environment: IP=192.168.223.131" in caplog.messages
    assert "Created default IPv4 pool (192.168.0.0/16) with NAT outgoing true. IPIP mode: off" in caplog.messages
    assert "Created default IPv6 pool (fd80:24e2:f998:72d6::/64) with NAT outgoing false. IPIP mode: off" in (
        caplog.messages)
    assert caplog.messages[-1] == "Using node name: node1"


def test_restart_overwrites_the_version_and_keeps_the_rest(store, proc_sys) -> None:
    start(store, proc_sys)
    guid = store.get_value("/calico/v1/config/ClusterGUID")
    store.put("/calico/v1/config/CalicoVersion", "v2.5.0")
    store.put("/calico/v1/config/LogSeverityScreen", "warning")
    store.put("/calico/bgp/v1/global/as_num", "65000")
    store.put("/calico/v1/Ready", "false")
    start(store, proc_sys)
    assert store.get_value("/calico/v1/config/CalicoVersion") == "v2.6.1"
    assert store.get_value("/calico/v1/config/ClusterGUID") == guid
    assert store.get_value("/calico/v1/config/LogSeverityScreen") == "warning"
    assert store.get_value("/calico/bgp/v1/global/as_num") == "65000"
    assert store.get_value("/calico/v1/Ready") == "false"  # created only when absent


def test_unset_node_keys_are_deleted(store, proc_sys) -> None:
    start(store, proc_sys, AS="64999", IP="192.168.223.131/24")
    assert store.get_value("/calico/bgp/v1/host/node1/as_num") == "64999"
    assert store.get_value("/calico/bgp/v1/host/node1/network_v4") == "192.168.223.0/24"
    store.put("/calico/bgp/v1/host/node1/network_v6", "fd00::/64")
    start(store, proc_sys)
    assert store.get_value("/calico/bgp/v1/host/node1/as_num") == "64999"  # kept: the node resource has it
    store.delete("/calico/bgp/v1/host/node1/as_num")
    start(store, proc_sys, IP="192.168.223.131")
    assert store.get_value("/calico/bgp/v1/host/node1/as_num") is None
    assert store.get_value("/calico/bgp/v1/host/node1/network_v6") is None
    assert store.get_value("/calico/bgp/v1/host/node1/network_v4") == "192.168.223.131/32"


def test_no_ipv6_on_the_host_means_no_ipv6_pool(store, tmp_path) -> None:
    start(store, tmp_path)
    assert store.get_value(V4_POOL) is not None
    assert store.get_value(V6_POOL) is None
    store.data.pop(V4_POOL)
    (tmp_path / "net/ipv6").mkdir(parents=True)
    start(store, tmp_path, FELIX_IPV6SUPPORT="false")
    assert store.get_value(V6_POOL) is None


def test_an_existing_pool_of_a_version_means_no_default_pool(store, proc_sys, caplog) -> None:
    caplog.set_level(logging.INFO)
    store.put("/calico/v1/ipam/v4/pool/10.50.0.0-16", '{"cidr":"10.50.0.0/16"}')
    start(store, proc_sys)
    assert store.get_value(V4_POOL) is None
    assert store.get_value(V6_POOL) is not None
    assert not [m for m in caplog.messages if m.startswith("Created default IPv4")]


@pytest.mark.parametrize("value, created", [("true", False), ("TRUE", False), ("1", True), ("yes", True), ("", True)])
def test_no_default_pools_takes_only_true(store, proc_sys, value: str, created: bool) -> None:
    start(store, proc_sys, NO_DEFAULT_POOLS=value)
    assert (store.get_value(V4_POOL) is not None) is created


def test_pool_environment(store, proc_sys, caplog) -> None:
    caplog.set_level(logging.INFO)
    # IPIP modes other than off are refused (test_double_startup_upstream.py); "Off" is lowercased.
    start(store, proc_sys, CALICO_IPV4POOL_CIDR="10.20.0.0/16", CALICO_IPV4POOL_IPIP="Off",
          CALICO_IPV4POOL_NAT_OUTGOING="false", CALICO_IPV6POOL_CIDR="fd00:1::/80")
    assert store.get_value("/calico/v1/ipam/v4/pool/10.20.0.0-16") == (
        '{"cidr":"10.20.0.0/16","ipip":"","ipip_mode":"","masquerade":false,"ipam":true,"disabled":false}')
    assert store.get_value("/calico/v1/config/IpInIpEnabled") is None
    assert store.get_value("/calico/v1/ipam/v6/pool/fd00:1::-80") is not None
    assert "Created default IPv4 pool (10.20.0.0/16) with NAT outgoing false. IPIP mode: off" in caplog.messages


@pytest.mark.parametrize("env, message", [
    ({"NO_DEFAULT_POOLS": "true", "CALICO_IPV4POOL_CIDR": "10.0.0.0/16"},
     "Invalid configuration with NO_DEFAULT_POOLS defined and CALICO_IPV4POOL_CIDR or CALICO_IPV6POOL_CIDR defined."),
    ({"CALICO_IPV4POOL_CIDR": "10.0.0/33"}, "Invalid CIDR specified in CALICO_IPV4POOL_CIDR '10.0.0/33'"),
    ({"CALICO_IPV4POOL_IPIP": "sometimes"}, "Failed to create default IPv4 IP pool: "),
    ({"IP": "not-an-ip"}, "Environment does not contain a valid IPv4 address: IP=not-an-ip"),
])
def test_fatal_configurations(store, proc_sys, caplog, env: dict, message: str) -> None:
    with pytest.raises(StartupError):
        start(store, proc_sys, **env)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and errors[0].startswith(message)


def test_another_node_with_our_address_stops_the_start(store, proc_sys, caplog) -> None:
    caplog.set_level(logging.INFO)
    start(store, proc_sys, NODENAME="node2")
    with pytest.raises(NodeConflict):
        start(store, proc_sys)
    assert "Calico node 'node2' is already using the IPv4 address 192.168.223.131:" in caplog.messages
    assert store.get_value("/calico/v1/host/node1/metadata") is None  # nothing written
    start(store, proc_sys, DISABLE_NODE_IP_CHECK="true")
    assert store.get_value("/calico/bgp/v1/host/node1/ip_addr_v4") == "192.168.223.131"


def test_etcd_unreachable_is_fatal(caplog) -> None:
    class Down(FakeEtcd):
        def get(self, key: str, recursive: bool = False):
            raise EtcdUnavailable("no etcd endpoint answered")

    with pytest.raises(StartupError):
        read_node(Down(), "node1")
    assert [r.getMessage() for r in caplog.records] == ["Unable to access datastore to query node configuration"]


# -- autodetection -------------------------------------------------------------------------------
def test_autodetect_picks_the_last_interface_first(store, proc_sys, caplog) -> None:
    # Reverse index order (interfaces.go@v2.6.1): docker0 skipped, eth1 before eth0.
    caplog.set_level(logging.INFO)
    start(store, proc_sys, IP="")
    assert store.get_value("/calico/bgp/v1/host/node1/ip_addr_v4") == "192.168.223.131"
    assert store.get_value("/calico/bgp/v1/host/node1/network_v4") == "192.168.223.0/24"
    assert "Using autodetected IPv4 address on interface eth1: 192.168.223.131/24" in caplog.messages


def test_autodetect_uses_the_stored_address_unless_asked() -> None:
    netdev = NetDev(runner=Addresses())
    store = DirEtcd()
    store.put("/calico/v1/host/node1/metadata", "{}")
    store.put("/calico/bgp/v1/host/node1/ip_addr_v4", "10.0.2.15")
    store.put("/calico/bgp/v1/host/node1/network_v4", "10.0.2.0/24")
    start_node(Config.from_env({**ENV, "IP": ""}), store, netdev, Path("/nonexistent"))
    assert store.get_value("/calico/bgp/v1/host/node1/ip_addr_v4") == "10.0.2.15"
    start_node(Config.from_env({**ENV, "IP": "autodetect"}), store, netdev, Path("/nonexistent"))
    assert store.get_value("/calico/bgp/v1/host/node1/ip_addr_v4") == "192.168.223.131"


def test_autodetect_filters() -> None:
    # The exclusion regexps are unanchored ("lo" matches wlo1); link-local is not global unicast.
    out = ("2: eth0    inet 169.254.3.3/16 scope link eth0\n"
           "3: eth0    inet 10.0.2.15/24 scope global eth0\n"
           "7: wlo1    inet 192.168.1.9/24 scope global wlo1\n"
           "8: cali1234    inet 10.9.9.9/32 scope global cali1234\n"
           "9: br-1f2e    inet 172.18.0.1/16 scope global br-1f2e\n"
           "10: ens3    inet 169.254.7.7/16 scope link ens3\n")
    netdev = NetDev(runner=Addresses(v4=out))
    assert netdev.autodetect(4) == ("br-1f2e", IPv4Interface("172.18.0.1/16"))  # not in the skip list
    assert netdev.autodetect(4, exclude=("br-.*", "lo", "cali.*")) == ("eth0", IPv4Interface("10.0.2.15/24"))
    with pytest.raises(CommandError, match="^no valid IPv4 addresses found on the host interfaces$"):
        netdev.autodetect(4, include=("ens.*",), exclude=())
    assert netdev.find_address(IPv4Address("192.168.1.9")) == ("wlo1", IPv4Interface("192.168.1.9/24"))


def test_autodetect_failure_is_fatal(store, proc_sys, caplog) -> None:
    caplog.set_level(logging.INFO)
    netdev = NetDev(runner=Addresses(v4="1: lo    inet 127.0.0.1/8 scope host lo\n"))
    with pytest.raises(StartupError):
        start(store, proc_sys, netdev, IP="")
    assert "Unable to auto-detect an IPv4 address: no valid host interfaces found" in caplog.messages
    assert "Couldn't autodetect a management IPv4 address:" in caplog.messages


def test_plugin_host_name_and_pool_flags_from_the_environment() -> None:
    cfg = Config.from_env({**ENV, "NODENAME": "n1", "HOSTNAME": "centos-1", "CALICO_IPV4POOL_NAT_OUTGOING": "",
                           "CALICO_IPV6POOL_NAT_OUTGOING": "f"})
    assert (cfg.nodename, cfg.plugin_hostname) == ("n1", "centos-1")
    assert cfg.ipv4pool_nat_outgoing is True  # evaluateENVBool: set and not a false word
    assert cfg.ipv6pool_nat_outgoing is False
    assert Config.from_env({"NODENAME": "n1"}).plugin_hostname  # falls back to the OS host name

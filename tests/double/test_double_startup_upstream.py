"""calico/node v2.6.1's startup switches as upstream reads them, and the double's refusals.

Expected values are upstream literals: projectcalico/calico@v2.6.1
calico_node/startup/startup.go:77-83 (WAIT_FOR_DATASTORE, "Skipping datastore connection
test"), :182-208 (waitForConnection: "Checking datastore connection", retry every second,
"Datastore connection verified", "Connection to the datastore is unauthorized") and
calico_node/filesystem/etc/rc.local:89 (`[ "$CALICO_LIBNETWORK_ENABLED" == "true" ]`).
"""

from __future__ import annotations

import io
from ipaddress import IPv4Address

import pytest
from test_double_startup_keys import Addresses, DirEtcd

from calico_double.agent.config import Config
from calico_double.agent.etcd import EtcdError, EtcdUnavailable
from calico_double.agent.netdev import NetDev
from calico_double.agent.registration import StartupError
from calico_double.agent.startup import run, setup_logging

ENV = {"NODENAME": "node1", "HOSTNAME": "node1", "IP": "192.168.223.131",
       "ETCD_ENDPOINTS": "http://192.168.223.131:2379", "FELIX_IPV6SUPPORT": "false"}


class FlakyEtcd(DirEtcd):
    """Unreachable for the first `down` reads (EtcdUnavailable), then a normal etcd."""

    def __init__(self, down: int, error: Exception | None = None) -> None:
        super().__init__()
        self.down = down
        self.error = error or EtcdUnavailable("no etcd endpoint answered")
        self.reads = 0

    def get(self, key: str, recursive: bool = False):
        self.reads += 1
        if self.reads <= self.down:
            raise self.error
        return super().get(key, recursive)


def printed(etcd: DirEtcd, sleeps: list[float] | None = None, **env: str) -> tuple[list[str], object]:
    out = io.StringIO()
    setup_logging(out)
    cfg = Config.from_env({**ENV, **env})
    try:
        result: object = run(cfg, etcd, NetDev(runner=Addresses()),
                             sleep=(sleeps.append if sleeps is not None else lambda s: None))
    except StartupError as exc:
        result = exc
    return out.getvalue().splitlines(), result


def test_wait_for_datastore_true_retries_until_etcd_answers() -> None:
    etcd, sleeps = FlakyEtcd(down=3), []
    lines, router_id = printed(etcd, sleeps, WAIT_FOR_DATASTORE="true")
    assert router_id == IPv4Address("192.168.223.131")
    assert lines[:2] == ["Checking datastore connection", "Datastore connection verified"]
    assert "Skipping datastore connection test" not in lines
    assert sleeps == [1.0, 1.0, 1.0]  # time.Sleep(1000 * time.Millisecond) per failed try


@pytest.mark.parametrize("value", ["", "True", "1", "yes"])
def test_anything_but_true_skips_the_wait(value: str) -> None:
    lines, result = printed(FlakyEtcd(down=1), WAIT_FOR_DATASTORE=value)
    assert lines[:2] == ["Skipping datastore connection test",
                         "ERROR: Unable to access datastore to query node configuration"]
    assert isinstance(result, StartupError)


def test_wait_for_datastore_stops_when_unauthorized() -> None:
    etcd = FlakyEtcd(down=1, error=EtcdError("HTTP 401: GET /calico/v1/host/foo/metadata: unauthorized"))
    lines, result = printed(etcd, WAIT_FOR_DATASTORE="true")
    assert lines == ["Checking datastore connection", "ERROR: Connection to the datastore is unauthorized"]
    assert isinstance(result, StartupError)


@pytest.mark.parametrize("mode", ["always", "Always", "cross-subnet"])
def test_ipip_pool_is_refused_in_one_line_before_any_write(mode: str) -> None:
    etcd = DirEtcd()
    lines, result = printed(etcd, CALICO_IPV4POOL_IPIP=mode)
    assert isinstance(result, StartupError)
    errors = [line for line in lines if line.startswith("ERROR: ")]
    assert len(errors) == 1 and "CALICO_IPV4POOL_IPIP" in errors[0] and "off" in errors[0], lines
    assert etcd.data == {}  # no tunl0 pool, no IpInIpEnabled


@pytest.mark.parametrize("mode", ["", "off", "OFF"])
def test_ipip_off_still_starts(mode: str) -> None:
    etcd = DirEtcd()
    _, result = printed(etcd, CALICO_IPV4POOL_IPIP=mode)
    assert result == IPv4Address("192.168.223.131")
    assert "/calico/v1/config/IpInIpEnabled" not in etcd.data


@pytest.mark.parametrize(("value", "enabled"), [
    ("true", True), ("TRUE", False), ("True", False), ("1", False), ("yes", False), ("on", False),
    (" true", False), ("", False), (None, False)])
def test_libnetwork_enabled_only_by_exactly_true(value: str | None, enabled: bool) -> None:
    env = dict(ENV) if value is None else {**ENV, "CALICO_LIBNETWORK_ENABLED": value}
    assert Config.from_env(env).libnetwork_enabled is enabled

"""The double's confd renders as Calico 2.6.1's does (`confd -watch -interval=5`, calico_node's
etc/service/available/confd/run): at once when a key below /calico changes, and otherwise
once per interval, not in a tight poll."""

from __future__ import annotations

import threading
import time

import pytest
from stub_etcd import StubEtcd

from calico_double.agent import confd
from calico_double.agent.config import Config
from calico_double.agent.etcd import EtcdClient

OWN = "/calico/bgp/v1/host/node1/ip_addr_v4"


@pytest.fixture
def running():
    stub = StubEtcd()
    stub.put(OWN, "192.168.223.131")
    renders: list[float] = []
    stop = threading.Event()
    cfg = Config.from_env({"NODENAME": "node1", "ETCD_ENDPOINTS": stub.url})

    def start(interval: float) -> None:
        thread = threading.Thread(target=confd.run, daemon=True, kwargs=dict(
            etcd=EtcdClient([stub.url]), cfg=cfg, interval=interval, stop=stop,
            render=lambda *_: renders.append(time.monotonic())))
        thread.start()

    yield stub, renders, start
    stop.set()
    stub.close()


def wait_until(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.01)


def test_without_changes_it_renders_once_per_interval(running) -> None:
    stub, renders, start = running
    start(interval=1.5)
    wait_until(lambda: len(renders) >= 2, timeout=4)
    gap = renders[1] - renders[0]  # a poll every second (the double before) gives 1.0
    assert 1.3 <= gap <= 2.5, f"renders {gap:.2f} s apart without a change; interval 1.5 s"


def test_a_change_below_calico_is_rendered_at_once(running) -> None:
    stub, renders, start = running
    start(interval=30)
    wait_until(lambda: renders)
    put_at = time.monotonic()
    stub.put("/calico/bgp/v1/host/node2/ip_addr_v4", "192.168.223.130")
    wait_until(lambda: len(renders) >= 2, timeout=3)
    assert renders[1] - put_at < 0.5, f"rendered {renders[1] - put_at:.2f} s after the change"

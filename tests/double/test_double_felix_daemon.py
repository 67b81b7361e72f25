"""The double's felix as a process: Ready wait, loose RPF refusal, keeping in step with etcd
(v2 watch), surviving an etcd outage, the process name, SIGTERM; and the route/ARP/sysctl plan.

Upstream behaviour checked: projectcalico/felix@2.6.0 felix.go loadConfigFromDatastore (waits
for /calico/v1/Ready), intdataplane/int_dataplane.go configureKernel (all/rp_filter > 1 is fatal
unless IgnoreLooseRPF; default/rp_filter=1), endpoint_mgr.go configureInterface (sysctls),
routetable/route_table.go (routes per interface, 10 s grace, static ARP).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from calico_double.agent.etcd import EtcdClient
from calico_double.agent.felix import LOOSE_RPF_MESSAGE, FelixDaemon, felix_hostname
from calico_double.agent.felix_dataplane import ApplyResult, Link, plan_interfaces, read_links
from calico_double.agent.felix_model import Model, model_from_kvs

REPO = Path(__file__).resolve().parents[2]


def wait_until(check, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


class StubEtcd:
    """Just enough of etcd's v2 keys API for felix: recursive GET with X-Etcd-Index, watch."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[str, int]] = {}
        self.index = 10
        self.cond = threading.Condition()
        self.failing = False
        self.gets = 0  # snapshot reads served
        self.refused = 0  # requests answered with an error while failing
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                key = urllib.parse.unquote(url.path[len("/v2/keys"):]) or "/"
                if stub.failing:
                    stub.refused += 1
                    self.send_error(500)
                    return
                if query.get("wait") == "true":
                    want = int(query["waitIndex"])
                    with stub.cond:
                        stub.cond.wait_for(lambda: stub.index >= want or stub.failing, timeout=30)
                        body = {"action": "set", "node": {"key": key, "modifiedIndex": stub.index}}
                    self._send(body, stub.index)
                    return
                with stub.cond:
                    stub.gets += 1
                    nodes = [{"key": k, "value": v, "modifiedIndex": i} for k, (v, i) in sorted(stub.data.items())
                             if k.startswith(key.rstrip("/") + "/")]
                    index = stub.index
                self._send({"action": "get", "node": {"key": key, "dir": True, "nodes": nodes}}, index)

            def _send(self, payload: dict, index: int) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Etcd-Index", str(index))
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def put(self, key: str, value: str) -> None:
        with self.cond:
            self.index += 1
            self.data[key] = (value, self.index)
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.failing = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    s = StubEtcd()
    yield s
    s.close()


def endpoint(eid: str, ip: str, host: str = "node1") -> tuple[str, str]:
    return (f"/calico/v1/host/{host}/workload/libnetwork/libnetwork/endpoint/{eid}",
            json.dumps({"state": "active", "name": "cali" + eid[:11], "mac": "ee:ee:ee:ee:ee:ee",
                        "profile_ids": ["net1"], "ipv4_nets": [f"{ip}/32"], "ipv6_nets": []}))


class FakeDataplane:
    def __init__(self) -> None:
        self.applied: list[Model] = []  # whole passes
        self.ipsets_resyncs: list[Model] = []

    def links(self, prefixes) -> dict[str, Link]:
        return {}

    def apply(self, model: Model, links, ipsets_only: bool = False) -> ApplyResult:
        (self.ipsets_resyncs if ipsets_only else self.applied).append(model)
        return ApplyResult(ok=True, changed=["x"])


# -- process start ----------------------------------------------------------------------------------
def test_waits_for_ready(stub) -> None:
    # felix@2.6.0 felix.go:645-653: "Waiting for the datastore to be ready" until the Ready flag is true.
    stop = threading.Event()
    felix = FelixDaemon(EtcdClient([stub.url]), "node1", stop=stop)
    result: list = []
    thread = threading.Thread(target=lambda: result.append(felix.load_config()), daemon=True)
    thread.start()
    wait_until(lambda: stub.gets >= 2)  # it has looked twice while Ready is absent
    assert not result, "felix must not start before /calico/v1/Ready=true"
    stub.put("/calico/v1/host/node1/config/DefaultEndpointToHostAction", "RETURN")
    stub.put("/calico/v1/Ready", "true")
    thread.join(timeout=5)
    model, index = result[0]
    assert model.ready and model.settings.default_endpoint_to_host_action == "RETURN"
    assert index == stub.index


def proc_sys(tmp_path: Path, all_rp: str) -> Path:
    for sub in ("net/ipv4/conf/all", "net/ipv4/conf/default"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    (tmp_path / "net/ipv4/conf/all/rp_filter").write_text(all_rp + "\n")
    (tmp_path / "net/ipv4/conf/default/rp_filter").write_text("0\n")
    return tmp_path


def test_loose_rpf_is_refused_with_upstreams_words(tmp_path, caplog) -> None:
    # felix@2.6.0 intdataplane/int_dataplane.go:739-752: rp_filter 2 (loose) stops felix unless IgnoreLooseRPF.
    felix = FelixDaemon(EtcdClient(["http://127.0.0.1:9"]), "node1", proc_sys=proc_sys(tmp_path, "2"))
    with caplog.at_level(logging.INFO):
        assert felix.configure_kernel(model_from_kvs([("/calico/v1/Ready", "true")], "node1")) is False
    assert LOOSE_RPF_MESSAGE in caplog.text
    assert "net.ipv4.conf.all.rp_filter to be set to 0 or 1" in LOOSE_RPF_MESSAGE
    assert (tmp_path / "net/ipv4/conf/default/rp_filter").read_text().strip() == "0", "nothing set before exit"
    ignore = model_from_kvs([("/calico/v1/Ready", "true"), ("/calico/v1/config/IgnoreLooseRPF", "true")], "node1")
    assert felix.configure_kernel(ignore) is True


def test_strict_rpf_starts_and_sets_the_default_strict(tmp_path) -> None:
    felix = FelixDaemon(EtcdClient(["http://127.0.0.1:9"]), "node1", proc_sys=proc_sys(tmp_path, "1"))
    assert felix.configure_kernel(model_from_kvs([("/calico/v1/Ready", "true")], "node1")) is True
    assert (tmp_path / "net/ipv4/conf/default/rp_filter").read_text().strip() == "1"


def test_hostname_is_nodename_not_libnetworks_hostname() -> None:
    # calico@v2.6.1 calico_node/filesystem/etc/service/available/felix/run:5-6: FELIX_FELIXHOSTNAME=$NODENAME.
    assert felix_hostname({"NODENAME": "node1", "HOSTNAME": "other"}) == "node1"
    assert felix_hostname({"FELIX_FELIXHOSTNAME": "n2"}) == "n2"


# -- keeping in step --------------------------------------------------------------------------------
def test_new_endpoint_programmed_within_a_second_and_etcd_outage_keeps_the_dataplane(stub) -> None:
    stub.put("/calico/v1/Ready", "true")
    etcd = EtcdClient([stub.url], timeout=2)
    stop = threading.Event()
    felix = FelixDaemon(etcd, "node1", stop=stop, poll_interval=0.5)
    model, index = felix.load_config()
    fake = FakeDataplane()
    thread = threading.Thread(target=felix.loop, args=(fake, model, index), daemon=True)
    thread.start()
    try:
        wait_until(lambda: fake.applied)
        start = time.monotonic()
        stub.put(*endpoint("a" * 64, "192.168.166.128"))
        wait_until(lambda: any(m.local_endpoints() for m in fake.applied), timeout=3)
        latency = time.monotonic() - start
        assert latency < 1.0, f"new endpoint took {latency:.2f}s"
        # etcd answers errors for a while: nothing is re-applied from an empty view.
        stub.failing = True
        with stub.cond:
            stub.cond.notify_all()
        count = len(fake.applied)
        wait_until(lambda: stub.refused >= 3)  # several failed reads in a row
        assert all(m.local_endpoints() for m in fake.applied[count - 1:])
        stub.failing = False
        stub.put(*endpoint("b" * 64, "192.168.166.129"))
        wait_until(lambda: len(fake.applied[-1].local_endpoints()) == 2, timeout=5)
    finally:
        stop.set()
        stub.put("/calico/v1/poke", "1")
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_ip_sets_resync_alone_every_10_s_and_the_rest_every_90_s(stub) -> None:
    """Felix 2.6's defaults: IpsetsRefreshInterval 10 s, IptablesRefreshInterval and
    RouteRefreshInterval 90 s, each resync on its own timer."""
    stub.put("/calico/v1/Ready", "true")
    now = [1000.0]
    stop = threading.Event()
    felix = FelixDaemon(EtcdClient([stub.url], timeout=2), "node1", stop=stop, poll_interval=0.05,
                        clock=lambda: now[0])
    model, index = felix.load_config()
    fake = FakeDataplane()
    thread = threading.Thread(target=felix.loop, args=(fake, model, index), daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(fake.applied) == 1)  # the first pass: everything
        for _ in range(8):  # 8 x 10 s: the IP sets alone each time
            now[0] += 10.0
            count = len(fake.ipsets_resyncs)
            wait_until(lambda c=count: len(fake.ipsets_resyncs) == c + 1)
        assert len(fake.applied) == 1
        now[0] += 10.0  # 90 s after the first pass: iptables and routes are due, a whole pass
        wait_until(lambda: len(fake.applied) == 2)
    finally:
        stop.set()
        stub.put("/calico/v1/poke", "1")
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_process_name_and_sigterm(stub, tmp_path) -> None:
    # Ready never set: the process waits and touches no dataplane, so it can run on this host.
    env = {**os.environ, "ETCD_ENDPOINTS": stub.url, "NODENAME": "node1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "calico_double.agent.felix"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        comm = Path(f"/proc/{proc.pid}/comm")
        wait_until(lambda: comm.exists() and comm.read_text().strip() == "calico-felix")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "Waiting for the datastore to be ready" in out
    assert "Received SIGTERM" in out


# -- routes, ARP, sysctls ---------------------------------------------------------------------------
def test_plan_routes_neighbours_and_sysctls() -> None:
    kvs = [("/calico/v1/Ready", "true"), endpoint("a" * 64, "192.168.166.128"),
           endpoint("b" * 64, "192.168.166.129"), endpoint("c" * 64, "192.168.104.0", host="node2")]
    model = model_from_kvs(kvs, "node1")
    links = {"caliaaaaaaaaaaa": Link("caliaaaaaaaaaaa", True), "calibbbbbbbbbbb": Link("calibbbbbbbbbbb", False)}
    plan = plan_interfaces(model, links, [], {}, {}, now=100.0)
    assert plan.add_routes == [("192.168.166.128/32", "caliaaaaaaaaaaa"), ("192.168.166.129/32", "calibbbbbbbbbbb")]
    assert plan.neighbours == [("192.168.166.128", "ee:ee:ee:ee:ee:ee", "caliaaaaaaaaaaa"),
                               ("192.168.166.129", "ee:ee:ee:ee:ee:ee", "calibbbbbbbbbbb")]
    # Sysctls only once the interface is oper up (configureInterface skips down ones).
    assert plan.sysctls == [("net/ipv4/conf/caliaaaaaaaaaaa/rp_filter", "1"),
                            ("net/ipv4/conf/caliaaaaaaaaaaa/route_localnet", "1"),
                            ("net/ipv4/conf/caliaaaaaaaaaaa/proxy_arp", "1"),
                            ("net/ipv4/neigh/caliaaaaaaaaaaa/proxy_delay", "0"),
                            ("net/ipv4/conf/caliaaaaaaaaaaa/forwarding", "1")]
    # In step: nothing to do. The endpoint goes: its route is kept for the grace period, then removed.
    routes = [("192.168.166.128/32", "caliaaaaaaaaaaa"), ("192.168.166.129/32", "calibbbbbbbbbbb"),
              ("10.0.0.0/8", "eth0")]
    neigh = {("192.168.166.128", "caliaaaaaaaaaaa"): "ee:ee:ee:ee:ee:ee",
             ("192.168.166.129", "calibbbbbbbbbbb"): "ee:ee:ee:ee:ee:ee"}
    plan = plan_interfaces(model, links, routes, neigh, {}, now=100.0)
    assert (plan.add_routes, plan.del_routes, plan.neighbours) == ([], [], [])
    gone = model_from_kvs(kvs[:2], "node1")
    seen = {"calibbbbbbbbbbb": 95.0}
    early = plan_interfaces(gone, links, routes, neigh, seen, now=100.0)
    assert early.del_routes == [] and early.grace
    late = plan_interfaces(gone, links, routes, neigh, seen, now=106.0)
    assert late.del_routes == [("192.168.166.129/32", "calibbbbbbbbbbb")]
    assert late.del_neighbours == [("192.168.166.129", "calibbbbbbbbbbb")]
    assert late.conntrack_flush == ["192.168.166.129"]
    # A link that does not exist yet gets nothing; the non-cali route is never touched.
    assert plan_interfaces(model, {}, [], {}, {}, 100.0).add_routes == []


def test_sigterm_is_handled_before_the_process_is_named(monkeypatch) -> None:
    # The name says felix is there, so whoever sees it may stop it at once (CI: SIGTERM sent as
    # /proc/<pid>/comm turned calico-felix found the default action still in place: exit -15).
    from calico_double.agent import felix

    seen = []
    monkeypatch.setattr(felix, "set_process_name", lambda _name: seen.append(signal.getsignal(signal.SIGTERM)))
    monkeypatch.setattr(felix, "setup_logging", lambda: None)

    def refuse(_env):
        raise felix.ConfigError("stop here")

    monkeypatch.setattr(felix.Config, "from_env", staticmethod(refuse))
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        assert felix.main({}) == 1  # stops at the configuration
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])
    assert seen and seen[0] not in (signal.SIG_DFL, signal.SIG_IGN, None)


def test_links_are_read_from_sysfs_as_ip_link_reports_them(tmp_path) -> None:
    """Admin up is IFF_UP in `flags` (if.h), operational state `operstate`; `ip -j link` shows the
    same two as its UP flag and operstate, and felix takes a link as up when both are."""
    for name, flags, oper in (("cali1", "0x1003", "up"), ("cali2", "0x1002", "down"),
                              ("cali3", "0x1003", "lowerlayerdown"), ("cali4", "0x1091", "unknown"),
                              ("eth0", "0x1003", "up")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "flags").write_text(flags + "\n")
        (tmp_path / name / "operstate").write_text(oper + "\n")
    (tmp_path / "cali5").mkdir()  # removed while listed: no files left
    assert read_links(tmp_path, ["cali"]) == {"cali1": Link("cali1", True), "cali2": Link("cali2", False),
                                              "cali3": Link("cali3", False), "cali4": Link("cali4", True)}


def test_sysfs_links_match_ip_link_on_this_host() -> None:
    """Every interface of this host's namespace, read both ways."""
    shown = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                                      check=True).stdout)
    by_ip = {i["ifname"]: Link(i["ifname"], "UP" in i.get("flags", []) and i.get("operstate") in ("UP", "UNKNOWN"))
             for i in shown}
    assert read_links(Path("/sys/class/net"), [""]) == by_ip

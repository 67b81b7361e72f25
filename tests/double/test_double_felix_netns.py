"""The double's felix on a real kernel: its rules, IP sets, routes and ARP entries in network
namespaces, with real TCP connections showing what Calico 2.6's profiles allow and drop.

Topology (one namespace each): a host H with three workloads behind veths caliA/caliB
(profile net1) and caliC (net2), a peer host P on eth1 (stands for node2, with a net1
workload 10.65.1.5 of its own) and an outside host O on eth2. Expected outcomes are Calico
2.6's (libnetwork-plugin v1.1.0's profile: inbound allow src_tag <net>, outbound allow; felix
2.6.0 rules/static.go: host -> local workload not policed; rules/nat.go: masquerade only from
masquerade pools to destinations outside every pool), not read from the code under test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PORT = 8080
SERVER = textwrap.dedent("""
    import socket, sys
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2])))
    s.listen(16)
    print("ready", flush=True)
    while True:
        conn, peer = s.accept()
        conn.sendall(peer[0].encode())
        conn.close()
""")
CLIENT = textwrap.dedent("""
    import socket, sys
    s = socket.socket()
    s.settimeout(1.5)
    if len(sys.argv) > 3:
        s.bind((sys.argv[3], 0))
    try:
        s.connect((sys.argv[1], int(sys.argv[2])))
        print("OK", s.recv(64).decode())
    except OSError as exc:
        print("FAIL", exc)
""")
# Runs inside H: builds the model from etcd-style keys and applies it, step by step, with a clock
# that moves 20 s per step (past felix's 10 s grace before it removes routes of a new interface).
APPLY = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from calico_double.agent.felix_dataplane import Dataplane
    from calico_double.agent.felix_model import model_from_kvs
    steps = json.loads(sys.stdin.read())
    now = [1000.0]
    dp = Dataplane(sys.argv[2], clock=lambda: now[0])
    out = []
    for kvs in steps:
        model = model_from_kvs([tuple(kv) for kv in kvs], "hostH")
        links = dp.links(model.settings.interface_prefixes)
        first = dp.apply(model, links)
        again = dp.apply(model, links)
        out.append({"first": first.changed, "again": again.changed, "ok": first.ok and again.ok})
        now[0] += 20
    print(json.dumps(out))
""")


def _missing_prerequisite(backend: str) -> str | None:
    if os.geteuid() != 0:
        return "root (network namespaces, iptables)"
    for tool in ("ip", "ipset", f"{backend}-restore", f"{backend}-save"):
        if shutil.which(tool) is None:
            return f"the {tool} command"
    probe = subprocess.run(["unshare", "-n", "sh", "-c",
                            f"ipset create fxprobe hash:ip && {backend} -m set -h >/dev/null "
                            f"&& {backend} -A INPUT -m set --match-set fxprobe src -j ACCEPT"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"ipset + {backend} inside a network namespace ({(probe.stderr or '').strip()[:200]})"
    return None


class Lab:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.namespaces: list[str] = []
        self.servers: list[subprocess.Popen] = []

    def ns(self, short: str) -> str:
        return f"fx{self.tag}{short}"

    def sh(self, *argv: str, ns: str | None = None, stdin: str | None = None) -> str:
        cmd = (["ip", "netns", "exec", self.ns(ns)] if ns else []) + list(argv)
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
        return result.stdout

    def add_ns(self, short: str) -> None:
        self.sh("ip", "netns", "add", self.ns(short))
        self.namespaces.append(self.ns(short))
        self.sh("ip", "link", "set", "lo", "up", ns=short)

    def veth(self, a_ns: str, a_name: str, b_ns: str, b_name: str) -> None:
        a_tmp, b_tmp = f"t{self.tag}{a_name}"[:15], f"u{self.tag}{b_name}"[:15]
        self.sh("ip", "link", "add", a_tmp, "type", "veth", "peer", "name", b_tmp)
        for tmp, ns, name in ((a_tmp, a_ns, a_name), (b_tmp, b_ns, b_name)):
            self.sh("ip", "link", "set", tmp, "netns", self.ns(ns))
            self.sh("ip", "link", "set", tmp, "name", name, ns=ns)

    def workload(self, short: str, iface: str, ip: str) -> None:
        self.add_ns(short)
        self.veth("H", iface, short, "eth0")
        # As libnetwork's Join: MAC ee:ee:ee:ee:ee:ee, /32, gateway 169.254.1.1 reached by proxy ARP.
        for cmd in (("ip", "link", "set", "eth0", "address", "ee:ee:ee:ee:ee:ee"),
                    ("ip", "addr", "add", f"{ip}/32", "dev", "eth0"), ("ip", "link", "set", "eth0", "up"),
                    ("ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"),
                    ("ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")):
            self.sh(*cmd, ns=short)
        self.sh("ip", "link", "set", iface, "up", ns="H")

    def serve(self, short: str, address: str) -> None:
        argv = ["ip", "netns", "exec", self.ns(short), sys.executable, "-c", SERVER, address, str(PORT)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.servers.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", f"server in {short} did not start: {proc.stderr.read() if proc.stderr else ''}"

    def connect(self, short: str, dst: str, src: str | None = None) -> str:
        args = [sys.executable, "-c", CLIENT, dst, str(PORT)] + ([src] if src else [])
        return self.sh(*args, ns=short).strip()

    def apply(self, backend: str, steps: list[list[tuple[str, str]]]) -> list[dict]:
        out = self.sh(sys.executable, "-c", APPLY, str(REPO), backend, ns="H", stdin=json.dumps(steps))
        return json.loads(out)

    def close(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait(timeout=10)
        for name in self.namespaces:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def endpoint(host: str, eid: str, iface: str, ip: str, net: str) -> tuple[str, str]:
    return (f"/calico/v1/host/{host}/workload/libnetwork/libnetwork/endpoint/{eid}",
            json.dumps({"state": "active", "name": iface, "mac": "ee:ee:ee:ee:ee:ee", "profile_ids": [net],
                        "ipv4_nets": [f"{ip}/32"], "ipv6_nets": []}))


def profile(net: str) -> list[tuple[str, str]]:
    return [(f"/calico/v1/policy/profile/{net}/rules",
             json.dumps({"inbound_rules": [{"action": "allow", "src_tag": net}],
                         "outbound_rules": [{"action": "allow"}]})),
            (f"/calico/v1/policy/profile/{net}/tags", json.dumps([net])),
            (f"/calico/v1/policy/profile/{net}/labels", "{}")]


def cluster(with_b: bool = True, to_host: str = "RETURN") -> list[tuple[str, str]]:
    kvs = [("/calico/v1/Ready", "true"),
           ("/calico/v1/host/hostH/config/DefaultEndpointToHostAction", to_host),
           ("/calico/v1/ipam/v4/pool/10.65.0.0-16",
            json.dumps({"cidr": "10.65.0.0/16", "masquerade": True, "ipam": True, "disabled": False})),
           endpoint("hostH", "a" * 64, "caliA", "10.65.0.1", "net1"),
           endpoint("hostH", "c" * 64, "caliC", "10.65.0.3", "net2"),
           endpoint("peer", "d" * 64, "caliD", "10.65.1.5", "net1"),
           *profile("net1"), *profile("net2")]
    if with_b:
        kvs.append(endpoint("hostH", "b" * 64, "caliB", "10.65.0.2", "net1"))
    return kvs


@pytest.fixture(params=["iptables-legacy", "iptables-nft"])
def lab(request) -> Iterator[tuple[Lab, str]]:
    backend = request.param
    missing = _missing_prerequisite(backend)
    if missing:
        pytest.skip(f"needs {missing}")
    lab = Lab(f"{os.getpid() % 10000}{backend[9]}")
    try:
        lab.add_ns("H")
        lab.sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns="H")  # Docker sets this on a real host
        lab.workload("A", "caliA", "10.65.0.1")
        lab.workload("B", "caliB", "10.65.0.2")
        lab.workload("C", "caliC", "10.65.0.3")
        for short, h_if, h_ip, o_if, o_ip in (("P", "eth1", "192.0.2.1", "eth1", "192.0.2.2"),
                                              ("O", "eth2", "203.0.113.1", "eth0", "203.0.113.2")):
            lab.add_ns(short)
            lab.veth("H", h_if, short, o_if)
            lab.sh("ip", "addr", "add", f"{h_ip}/24", "dev", h_if, ns="H")
            lab.sh("ip", "link", "set", h_if, "up", ns="H")
            lab.sh("ip", "addr", "add", f"{o_ip}/24", "dev", o_if, ns=short)
            lab.sh("ip", "link", "set", o_if, "up", ns=short)
        # P is node2: a net1 workload of its own, and the routes BIRD would exchange.
        lab.sh("ip", "addr", "add", "10.65.1.5/32", "dev", "lo", ns="P")
        lab.sh("ip", "route", "add", "10.65.0.0/24", "via", "192.0.2.1", ns="P")
        lab.sh("ip", "route", "add", "10.65.1.0/24", "via", "192.0.2.2", ns="H")
        # Like any host, H has a default route; proxy ARP answers for 169.254.1.1 only because
        # the host has a route to it through another interface.
        lab.sh("ip", "route", "add", "default", "via", "203.0.113.2", ns="H")
        yield lab, backend
    finally:
        lab.close()


def test_profiles_routes_and_nat_on_a_real_kernel(lab) -> None:
    lab, backend = lab
    result = lab.apply(backend, [cluster()])[0]
    assert result["ok"], result
    assert result["again"] == [], f"a second pass with nothing changed must change nothing: {result['again']}"

    # What felix leaves in the kernel: /32 scope-link route, permanent ARP entry, sysctls.
    assert "10.65.0.1 scope link" in lab.sh("ip", "-4", "route", "show", "dev", "caliA", ns="H")
    neigh = lab.sh("ip", "-4", "neigh", "show", "dev", "caliA", ns="H")
    assert "10.65.0.1 lladdr ee:ee:ee:ee:ee:ee PERMANENT" in neigh
    for path, value in (("conf/caliA/rp_filter", "1"), ("conf/caliA/route_localnet", "1"),
                        ("conf/caliA/proxy_arp", "1"), ("neigh/caliA/proxy_delay", "0"),
                        ("conf/caliA/forwarding", "1")):
        assert lab.sh("cat", f"/proc/sys/net/ipv4/{path}", ns="H").strip() == value, path
    saved = lab.sh(f"{backend}-save", ns="H")
    assert '-A FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso" -j cali-FORWARD' in saved
    members = lab.sh("ipset", "list", ns="H")
    assert "10.65.1.5" in members and "10.65.0.1" in members

    lab.serve("A", "0.0.0.0")
    lab.serve("O", "203.0.113.2")
    lab.serve("P", "10.65.1.5")
    lab.serve("H", "0.0.0.0")
    assert lab.connect("B", "10.65.0.1") == "OK 10.65.0.2", "same network, same host"
    assert lab.connect("C", "10.65.0.1").startswith("FAIL"), "net2 must not reach net1"
    assert lab.connect("P", "10.65.0.1", "10.65.1.5") == "OK 10.65.1.5", "net1 workload on the other host"
    assert lab.connect("P", "10.65.0.1", "192.0.2.2").startswith("FAIL"), "remote host -> workload is dropped"
    assert lab.connect("H", "10.65.0.1").startswith("OK"), "host -> local workload is not policed"
    assert lab.connect("A", "203.0.113.2") == "OK 203.0.113.1", "egress outside the pools is masqueraded"
    assert lab.connect("A", "10.65.1.5") == "OK 10.65.0.1", "inside the pools: not masqueraded"
    assert lab.connect("A", "192.0.2.1").startswith("OK"), "DefaultEndpointToHostAction RETURN -> INPUT accepts"

    # B goes (docker rm), and the host's action becomes DROP.
    result = lab.apply(backend, [cluster(), cluster(with_b=False, to_host="DROP")])[1]
    assert result["ok"], result
    assert "10.65.0.2" not in lab.sh("ip", "-4", "route", "show", ns="H")
    assert "10.65.0.2" not in lab.sh("ip", "-4", "neigh", "show", "nud", "permanent", ns="H")
    assert "cali-tw-caliB" not in lab.sh(f"{backend}-save", "-t", "filter", ns="H")
    assert lab.connect("B", "10.65.0.1").startswith("FAIL"), "traffic from an unknown cali interface is dropped"
    assert lab.connect("A", "192.0.2.1").startswith("FAIL"), "DefaultEndpointToHostAction DROP"
    assert lab.connect("A", "203.0.113.2") == "OK 203.0.113.1", "forwarded traffic is not affected"

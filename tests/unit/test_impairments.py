"""Impairments on a real kernel: two network namespaces stand for node1 and node2 (the guide's
addresses, private to the namespaces), joined by a veth; the project's iptables rules and tc
qdiscs are applied there through a Node-like runner, and real TCP connections show the
partition bite and heal. Expected outcomes are TCP's, not read from the code under test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid

import pytest

from calicolab.core import config
from calicolab.core.errors import UserError
from calicolab.core.remote import CommandResult
from calicolab.stack import impairments

PORT = 2380
SERVER = textwrap.dedent("""
    import socket, sys
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16); print("ready", flush=True)
    while True:
        c, _ = s.accept(); c.sendall(b"hi"); c.close()
""")
# argv: ip port [count]: count connections, eight at a time (each its own SYN), a line each.
CLIENT = textwrap.dedent("""
    import socket, sys
    from concurrent.futures import ThreadPoolExecutor
    def one(_):
        s = socket.socket(); s.settimeout(3.0)
        try:
            s.connect((sys.argv[1], int(sys.argv[2]))); return "OK" if s.recv(2) == b"hi" else "FAIL"
        except OSError as exc:
            return f"FAIL {exc}"
        finally:
            s.close()
    with ThreadPoolExecutor(8) as pool:
        print("\\n".join(pool.map(one, range(int(sys.argv[3]) if len(sys.argv) > 3 else 1))))
""")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "root (network namespaces, iptables)"
    for tool in ("ip", "iptables", "tc", "unshare"):
        if shutil.which(tool) is None:
            return f"the {tool} command"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "iptables -w -A INPUT -m comment --comment x -m statistic "
                            "--mode random --probability 0.5 -j DROP"], capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"iptables inside a network namespace ({probe.stderr.strip()[:200]})"


class NsNode:
    """Runs commands inside one namespace, answering like calicolab.core.remote.Node."""

    def __init__(self, name: str, ns: str) -> None:
        self.name, self.ns = name, ns

    def run(self, cmd: str, *, check: bool = False, timeout: float = 60) -> CommandResult:
        p = subprocess.run(["ip", "netns", "exec", self.ns, "sh", "-c", cmd], capture_output=True, text=True,
                           timeout=timeout, check=False)
        res = CommandResult(self.name, cmd, p.returncode, p.stdout, p.stderr)
        if check and not res.ok:
            raise AssertionError(res.describe())
        return res


@pytest.fixture
def pair():
    why = _missing()
    if why:
        pytest.skip(f"needs {why}")
    cfg = config.load({}, environ={})
    tag = uuid.uuid4().hex[:6]
    names = {n.name: f"imp{tag}{n.name[-1]}" for n in cfg.nodes}
    nodes = [NsNode(n.name, names[n.name]) for n in cfg.nodes]
    servers = []
    try:
        for ns in names.values():
            subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "link", "add", f"v{tag}a", "type", "veth", "peer", "name", f"v{tag}b"], check=True)
        for (spec, node), end in zip(zip(cfg.nodes, nodes, strict=True), ("a", "b"), strict=True):
            subprocess.run(["ip", "link", "set", f"v{tag}{end}", "netns", node.ns], check=True)
            node.run(f"ip link set v{tag}{end} name eth1 && ip addr add {spec.ip}/24 dev eth1 && "
                     "ip link set eth1 up && ip link set lo up", check=True)
        for spec, node in zip(cfg.nodes, nodes, strict=True):
            proc = subprocess.Popen(["ip", "netns", "exec", node.ns, sys.executable, "-c", SERVER, spec.ip, str(PORT)],
                                    stdout=subprocess.PIPE, text=True)
            servers.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield cfg, nodes
    finally:
        for proc in servers:
            proc.kill()
        for ns in names.values():
            subprocess.run(["ip", "netns", "del", ns], check=False)


def _connect(node: NsNode, ip: str) -> str:
    return _connects(node, ip, 1)[0]


def _connects(node: NsNode, ip: str, count: int) -> list[str]:
    """count connections from one client process: one line each, OK or FAIL and why."""
    out = node.run(f"{sys.executable} -c '{CLIENT}' {ip} {PORT} {count}").stdout.splitlines()
    assert len(out) == count, out
    return out


def test_a_partition_bites_both_ways_is_counted_and_heals_leaving_nothing(pair):
    cfg, (n1, n2) = pair
    ip1, ip2 = (n.ip for n in cfg.nodes)
    assert _connect(n1, ip2) == "OK" and _connect(n2, ip1) == "OK"  # the healthy baseline
    applied = impairments.apply(cfg, [n1, n2], impairments.Impairment("partition", PORT))
    assert _connect(n1, ip2).startswith("FAIL") and _connect(n2, ip1).startswith("FAIL")
    impairments.clear(cfg, [n1, n2], applied)
    assert applied.dropped > 0 and applied.seen >= applied.dropped
    assert _connect(n1, ip2) == "OK" and _connect(n2, ip1) == "OK"
    for n in (n1, n2):
        assert impairments.COMMENT not in n.run("iptables -w -S INPUT").stdout


def test_a_one_way_partition_cuts_only_that_way(pair):
    cfg, (n1, n2) = pair
    ip1, ip2 = (n.ip for n in cfg.nodes)
    applied = impairments.apply(cfg, [n1, n2], impairments.parse(f"partition:{PORT}@node1->node2"))
    assert applied.nodes == ["node2"]
    # Only node2 drops (packets from node1 on the port): node1's SYN to node2:2380 is lost.
    assert _connect(n1, ip2).startswith("FAIL")
    assert impairments.COMMENT not in n1.run("iptables -w -S INPUT").stdout
    impairments.clear(cfg, [n1, n2], applied)
    assert _connect(n1, ip2) == "OK"


def test_loss_drops_about_its_share(pair):
    cfg, (n1, n2) = pair
    ip2 = cfg.nodes[1].ip
    applied = impairments.apply(cfg, [n1, n2], impairments.parse(f"loss:{PORT}:50"))
    # A dropped SYN is sent again after Linux's initial RTO, 1 s (TCP_TIMEOUT_INIT, include/net/
    # tcp.h), so each connect has 3 s: one retry, and room for a listener that a loaded CI machine
    # schedules late (with 1 s, all 40 timed out once while the rule had passed half the SYNs).
    # Eight in flight, so a dropped one costs its seconds, not the run's.
    results = _connects(n1, ip2, 40)
    impairments.clear(cfg, [n1, n2], applied)
    assert applied.seen > 0 and 0 < applied.dropped < applied.seen, (applied.seen, applied.dropped)
    assert 0.2 < applied.dropped / applied.seen < 0.8, (applied.seen, applied.dropped)
    assert "OK" in results


def test_a_rate_limit_is_a_tbf_qdisc_and_is_removed(pair):
    cfg, (n1, n2) = pair
    applied = impairments.apply(cfg, [n1, n2], impairments.parse("rate:1mbit"))
    assert "tbf" in n1.run("tc qdisc show dev eth1").stdout
    impairments.clear(cfg, [n1, n2], applied)
    assert "tbf" not in n1.run("tc qdisc show dev eth1").stdout


def test_delay_needs_netem_and_says_so_in_one_line_where_it_is_missing(pair):
    cfg, (n1, n2) = pair
    missing = impairments.netem_missing(n1)
    if missing:
        with pytest.raises(UserError, match="no sch_netem") as err:
            impairments.apply(cfg, [n1, n2], impairments.parse("delay:50:10"))
        assert "\n" not in str(err.value)
    else:
        impairments.apply(cfg, [n1, n2], impairments.parse("delay:50:10"))
        assert "netem" in n1.run("tc qdisc show dev eth1").stdout
        impairments.clear(cfg, [n1, n2])


@pytest.mark.parametrize("text", ["partition", "loss:179", "loss:179:0", "loss:179:101", "rate:fast",
                                  "delay:x", "jitter:5"])
def test_a_bad_impairment_is_refused_in_one_line(text):
    with pytest.raises(UserError, match="is not understood"):
        impairments.parse(text)

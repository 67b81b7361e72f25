"""Workloads that carry traffic through a rehearsal: busybox containers on a Calico network,
pinged across the nodes before, during and after a change."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from calicolab.core.polling import Timeout, wait_for
from calicolab.core.remote import Node
from calicolab.stack import parsers

PING_DEADLINE = 45  # BIRD reconnects every 5 s; a restarted calico-node re-learns routes in ~10 s


@dataclass(frozen=True)
class Workload:
    name: str
    node: Node
    ip: str


def ensure_network(node: Node, network: str) -> None:
    if node.run(f"docker network inspect {shlex.quote(network)} >/dev/null 2>&1").ok:
        return
    node.run(f"docker network create --driver calico --ipam-driver calico-ipam {shlex.quote(network)}",
             check=True, timeout=60)


def start(node: Node, name: str, network: str) -> Workload:
    node.run(f"docker rm -f {shlex.quote(name)} >/dev/null 2>&1")
    node.run(f"docker run --net {shlex.quote(network)} --name {shlex.quote(name)} -tid busybox",
             check=True, timeout=120)
    return Workload(name, node, address(node, name))


def address(node: Node, name: str) -> str:
    """The workload's current IPv4 on cali0 (a restarted container may get a new one)."""
    addr = parsers.ip_addr(node.run(f"docker exec {shlex.quote(name)} ip addr").stdout)
    ips = addr["cali0"].ipv4 if "cali0" in addr else ()
    if not ips:
        raise RuntimeError(f"{name} on {node.name} has no address on cali0")
    return ips[0].split("/")[0]


def refresh(w: Workload) -> Workload:
    return Workload(w.name, w.node, address(w.node, w.name))


def ping_ttl(src: Workload, dst: Workload, deadline: float = PING_DEADLINE) -> int | None:
    """The reply TTL once src reaches dst, or None if it never does within the deadline."""
    def once() -> list[int]:
        out = src.node.run(f"docker exec {src.name} ping -c 1 -W 2 {dst.ip}", timeout=20).stdout
        return parsers.ping_ttls(out)

    try:
        return wait_for(once, bool, f"{src.name} -> {dst.name}", timeout=deadline)[0]
    except Timeout:
        return None


def start_background_ping(src: Workload, dst: Workload, seconds: int) -> None:
    """Ping every 0.2 s for up to `seconds` inside src, so losses during a change are counted."""
    count = seconds * 5
    # The pid is kept for stop_background_ping: the busybox image has no pkill, sh has kill.
    src.node.run(f"docker exec -d {src.name} sh -c 'ping -i 0.2 -c {count} {dst.ip} > /tmp/bgping.log 2>&1 & "
                 "echo $! > /tmp/bgping.pid; wait'", check=True)


def stop_background_ping(src: Workload) -> tuple[int, int]:
    """Stop the background ping; (sent, received) from its summary."""
    src.node.run(f"docker exec {src.name} sh -c 'kill -INT $(cat /tmp/bgping.pid)'")
    try:
        text = wait_for(lambda: src.node.run(f"docker exec {src.name} cat /tmp/bgping.log").stdout,
                        lambda t: "packets transmitted" in t, f"{src.name}: ping summary", timeout=10)
    except Timeout as err:
        text = str(err.last)
    m = re.search(r"(\d+) packets transmitted, (\d+) packets received", text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def remove(nodes: list[Node], names: list[str], network: str | None = None) -> None:
    for node in nodes:
        node.run("docker rm -f " + " ".join(shlex.quote(n) for n in names) + " >/dev/null 2>&1")
    if network:
        nodes[0].run(f"docker network rm {shlex.quote(network)} >/dev/null 2>&1")

"""Workloads on a Calico network, the one way the suite runs them: the guide's busybox
containers (section 7), the fault tests' traffic pair and the upgrade rehearsals' watchers.
Create a network, start a workload and read its address, ping another workload once or until
a deadline, count a background ping across a change, remove what was made."""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from calicolab.core.polling import Timeout, wait_for
from calicolab.core.remote import CommandResult, Node, in_parallel
from calicolab.stack import parsers

IMAGE = "busybox"
BLOCK_PREFIX = 26  # Calico 2.6 IPAM hands out /26 blocks per host
PING_DEADLINE = 45  # BIRD reconnects every 5 s; a restarted calico-node re-learns routes in ~10 s
BACKGROUND_INTERVAL = 0.2  # seconds between background pings


class WorkloadFailed(Exception):
    """A workload or its network could not be made; the message says which command said what."""

    def __init__(self, what: str, result: CommandResult) -> None:
        super().__init__(f"{what}: {result.describe()}")
        self.what, self.result = what, result


@dataclass(frozen=True)
class Workload:
    name: str
    node: Node
    ip: str

    @property
    def block(self) -> str:
        """The /26 IPAM block the address came from."""
        return str(ipaddress.ip_network(f"{self.ip}/{BLOCK_PREFIX}", strict=False))

    def exec(self, cmd: str, timeout: float = 30) -> CommandResult:
        return self.node.run(f"docker exec {shlex.quote(self.name)} {cmd}", timeout=timeout)


@dataclass(frozen=True)
class Ping:
    """One ICMP echo from a workload: the reply TTLs (empty when nothing came back) and the text."""

    ttls: tuple[int, ...]
    output: str

    @property
    def answered(self) -> bool:
        return bool(self.ttls)


def create_network(node: Node, network: str) -> None:
    """`docker network create --driver calico --ipam-driver calico-ipam NETWORK` (the guide's)."""
    res = node.run(f"docker network create --driver calico --ipam-driver calico-ipam {shlex.quote(network)}",
                   timeout=60)
    if not res.ok:
        raise WorkloadFailed(f"network {network} on {node.name}", res)


def ensure_network(node: Node, network: str) -> None:
    if not node.run(f"docker network inspect {shlex.quote(network)} >/dev/null 2>&1").ok:
        create_network(node, network)


def start(node: Node, name: str, network: str) -> Workload:
    """`docker run --net NETWORK --name NAME -tid busybox`, and its address on cali0."""
    res = node.run(f"docker run --net {shlex.quote(network)} --name {shlex.quote(name)} -tid {IMAGE}", timeout=120)
    if not res.ok:
        raise WorkloadFailed(f"workload {name} on {node.name}", res)
    return Workload(name, node, address(node, name))


def start_each(nodes: Sequence[Node], names: Sequence[str], network: str) -> list[Workload]:
    """One workload per node (names[i] on nodes[i]), the nodes at once. The addresses are those of
    starts one after another: each host claims its own block, its choice seeded by its host name
    (libcalico-go randomBlockGenerator), and the claims are compare-and-swap writes in etcd."""
    by_node = dict(zip((n.name for n in nodes), names, strict=True))
    started = in_parallel(list(nodes), lambda node: start(node, by_node[node.name], network))
    return [started[n.name] for n in nodes]


def interfaces(node: Node, name: str) -> dict[str, parsers.Interface]:
    return parsers.ip_addr(node.run(f"docker exec {shlex.quote(name)} ip addr").stdout)


def address(node: Node, name: str) -> str:
    """The workload's current IPv4 on cali0 (a restarted container may get a new one)."""
    res = node.run(f"docker exec {shlex.quote(name)} ip addr")
    iface = parsers.ip_addr(res.stdout).get("cali0")
    if iface is None or not iface.ipv4:
        raise WorkloadFailed(f"{name} on {node.name} has no IPv4 address on cali0", res)
    return iface.ipv4[0].split("/")[0]


def refresh(w: Workload) -> Workload:
    return Workload(w.name, w.node, address(w.node, w.name))


def ping(src: Workload, dst: Workload, wait: int = 2) -> Ping:
    out = src.exec(f"ping -c 1 -W {wait} {dst.ip}", timeout=wait + 18).stdout
    return Ping(tuple(parsers.ping_ttls(out)), out)


def ping_until(src: Workload, dst: Workload, deadline: float = PING_DEADLINE, interval: float = 0.2) -> Ping:
    """The first answered ping; Timeout (with the last Ping seen) when none comes in time. Each
    attempt waits 1 s for its reply (busybox's -W is whole seconds): a route still coming up
    costs an attempt 1 s, not 2, and the next attempt follows at once."""
    return wait_for(lambda: ping(src, dst, wait=1), lambda p: p.answered, f"{src.name} -> {dst.name} ping",
                    timeout=deadline, interval=interval)


def ping_ttl(src: Workload, dst: Workload, deadline: float = PING_DEADLINE) -> int | None:
    """The reply TTL once src reaches dst, or None if it never does within the deadline."""
    try:
        return ping_until(src, dst, deadline).ttls[0]
    except Timeout:
        return None


def start_background_ping(src: Workload, dst: Workload, seconds: int) -> None:
    """Ping every BACKGROUND_INTERVAL for up to `seconds` inside src, so losses during a change
    are counted; once src reaches dst."""
    count = int(seconds / BACKGROUND_INTERVAL)
    # A workload just started answers once its route is programmed: the count starts after the
    # first answer, so that moment is not a loss (drills saw 2 of ~200 lost at their start).
    ping_until(src, dst)
    # The pid is kept for stop_background_ping: the busybox image has no pkill, sh has kill.
    src.node.run(f"docker exec -d {src.name} sh -c 'ping -i {BACKGROUND_INTERVAL} -c {count} {dst.ip} "
                 "> /tmp/bgping.log 2>&1 & echo $! > /tmp/bgping.pid; wait'", check=True)


def stop_background_ping(src: Workload) -> tuple[int, int]:
    """Stop the background ping; (sent, received) from its summary."""
    src.exec("sh -c 'kill -INT $(cat /tmp/bgping.pid)'")
    try:
        text = wait_for(lambda: src.exec("cat /tmp/bgping.log").stdout,
                        lambda t: "packets transmitted" in t, f"{src.name}: ping summary", timeout=10)
    except Timeout as err:
        text = str(err.last)
    return ping_tally(text)


# Requests sent in the last second before the stop whose replies had not come yet: in flight,
# not lost (a loaded runner answers late; CI once saw 232 of 233 with nothing else wrong).
IN_FLIGHT_S = 1.0


def ping_tally(text: str) -> tuple[int, int]:
    """(sent, received) from busybox ping's output, the unanswered tail of at most IN_FLIGHT_S
    left out of `sent`: a missing reply is lost only when a later request was answered, or
    when the tail is longer than replies can be in flight (traffic down at the stop)."""
    m = re.search(r"(\d+) packets transmitted, (\d+) packets received", text)
    if not m:
        return (0, 0)
    sent, got = int(m.group(1)), int(m.group(2))
    answered = [int(n) for n in re.findall(r"\bseq=(\d+) ", text)]
    if not answered:
        return (sent, got)
    tail = sent - 1 - max(answered)  # busybox numbers requests from 0
    # A longer silence at the end is an outage, counted whole.
    in_flight = tail if 0 <= tail <= round(IN_FLIGHT_S / BACKGROUND_INTERVAL) else 0
    return (sent - in_flight, got)


HTTP_PORT = 8080  # busybox httpd in a workload, the TCP target of reachability probes
PROTOCOLS = ("icmp", "tcp")


def serve_http(ws: Sequence[Workload]) -> None:
    """busybox httpd on HTTP_PORT inside each workload (it daemonizes), serving one page; the
    nodes at once, each node's workloads one after another."""
    by_node: dict[str, list[Workload]] = {}
    for w in ws:
        by_node.setdefault(w.node.name, []).append(w)

    def on(node: Node) -> None:
        for w in by_node[node.name]:
            node.run(f"docker exec {shlex.quote(w.name)} sh -c 'mkdir -p /tmp/www && echo ok > /tmp/www/index.html "
                     f"&& httpd -p {HTTP_PORT} -h /tmp/www'", check=True)

    in_parallel([group[0].node for group in by_node.values()], on)


def reachable(node: Node, workload: str | None, targets: dict[str, str], proto: str,
              wait: int = 2) -> dict[str, bool]:
    """From a workload on `node` (or the node itself when `workload` is None): which targets
    (label -> IPv4) answer, all probed at once. icmp: one ping; tcp: an HTTP GET on HTTP_PORT
    whose page must come back (busybox nc in a workload: its wget crashes; curl on a host)."""
    if proto not in PROTOCOLS:
        raise ValueError(f"protocol {proto!r}: use one of {PROTOCOLS}")
    parts = []
    for label, ip in targets.items():
        if proto == "icmp":
            probe = f"ping -c 1 -W {wait} {ip}"
        elif workload is not None:
            probe = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w {wait} {ip} {HTTP_PORT} | grep -q ok"
        else:
            probe = f"curl -s -f -m {wait} -o /dev/null http://{ip}:{HTTP_PORT}/"
        parts.append(f"( {probe} >/dev/null 2>&1 && echo {shlex.quote(label)}=ok || echo {shlex.quote(label)}=no ) &")
    script = " ".join(parts) + " wait"
    command = f"sh -c {shlex.quote(script)}"
    if workload is not None:
        command = f"docker exec {shlex.quote(workload)} {command}"
    out = node.run(command, timeout=wait * 4 + 30).stdout
    seen = dict(line.rsplit("=", 1) for line in out.splitlines() if "=" in line)  # labels may hold spaces
    return {label: seen.get(label) == "ok" for label in targets}


def remove(nodes: Sequence[Node], names: Iterable[str], network: str | None = None) -> None:
    """Remove the named workloads wherever they are, then the network (leftovers included)."""
    quoted = " ".join(shlex.quote(n) for n in names)
    if quoted:  # the nodes at once: each removal is the plugin's leave and IPAM release there
        in_parallel(list(nodes), lambda node: node.run(f"docker rm -f {quoted} >/dev/null 2>&1", timeout=60))
    if network:
        nodes[0].run(f"docker network rm {shlex.quote(network)} >/dev/null 2>&1", timeout=60)

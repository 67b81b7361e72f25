"""Network impairments between the nodes, per port and direction, made with the nodes' own
iptables and tc: a partition (DROP), random loss (`-m statistic --mode random`), an egress rate
limit (tbf) and, where the kernel has sch_netem, delay and jitter.

Every iptables rule carries the comment COMMENT, so clear() finds exactly what was added and a
partition's drop counters prove it bit. Rules go into INPUT of the receiving node: a port's
traffic from a peer is dropped both when the peer is the client (--dport) and when it is the
server (--sport), so "a->b" cuts a's packets to b on that port both ways of the TCP session's
setup, and "both" does it on every node.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from calicolab.core import nodes as cluster_nodes
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.core.polling import wait_for
from calicolab.core.remote import Node

COMMENT = "calicolab-impairment"
SEEN = "calicolab-impairment-seen"  # counting rules (no target) above the DROP rules
KINDS = ("partition", "loss", "rate", "delay")
NO_NETEM = ("this kernel has no sch_netem (tc: 'Specified qdisc kind is unknown'): delay and jitter cannot "
            "be shown here; they run where netem exists (VMs, most runners)")


@dataclass(frozen=True)
class Impairment:
    kind: str  # partition | loss | rate | delay
    port: int | None = None  # TCP port (partition, loss); None: every port
    direction: str = "both"  # both | <node>-><node>
    percent: float = 0.0  # loss
    rate: str = ""  # rate: tbf rate, e.g. 1mbit
    delay_ms: int = 0  # delay (netem)
    jitter_ms: int = 0

    @property
    def key(self) -> str:
        """How budgets.yaml names it (`calico-node-restart under loss:179`): kind and port."""
        return f"{self.kind}:{self.port}" if self.port else self.kind

    def describe(self) -> str:
        where = f"TCP {self.port}" if self.port else "every port"
        way = "both ways" if self.direction == "both" else self.direction
        return {"partition": f"partition of {where}, {way}",
                "loss": f"{self.percent:g}% random loss on {where}, {way}",
                "rate": f"egress rate limit {self.rate} on the private interface, {way}",
                "delay": f"delay {self.delay_ms} ms +- {self.jitter_ms} ms, {way}"}[self.kind]


def parse(text: str) -> Impairment:
    """`partition:2380`, `loss:179:20`, `rate:1mbit`, `delay:50:10`, each optionally `@node1->node2`."""
    spec, _, direction = text.partition("@")
    kind, *args = spec.split(":")
    try:
        if kind == "partition" and len(args) == 1:
            return Impairment("partition", int(args[0]), direction or "both")
        if kind == "loss" and len(args) == 2 and 0 < float(args[1]) <= 100:
            return Impairment("loss", int(args[0]), direction or "both", percent=float(args[1]))
        if kind == "rate" and len(args) == 1 and re.fullmatch(r"\d+(kbit|mbit|gbit)", args[0]):
            return Impairment("rate", None, direction or "both", rate=args[0])
        if kind == "delay" and len(args) in (1, 2):
            return Impairment("delay", None, direction or "both", delay_ms=int(args[0]),
                              jitter_ms=int(args[1]) if len(args) == 2 else 0)
    except ValueError:
        pass
    raise UserError(f"impairment {text!r} is not understood: use partition:PORT, loss:PORT:PERCENT, "
                    "rate:RATE (e.g. 1mbit), delay:MS[:JITTER], each optionally @node1->node2")


@dataclass
class Applied:
    impairment: Impairment
    nodes: list[str] = field(default_factory=list)  # where rules or qdiscs were added
    seen: int = 0  # packets that reached the DROP rules (partition, loss), read before clearing
    dropped: int = 0  # of them, dropped
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"what": self.impairment.describe(), "key": self.impairment.key, "nodes": self.nodes,
                "seen": self.seen, "dropped": self.dropped,
                "seconds": round(self.seconds, 1)}


def _targets(cfg: ClusterConfig, nodes: Sequence[Node], imp: Impairment) -> list[tuple[Node, list[str]]]:
    """(receiving node, source addresses) pairs the impairment applies to."""
    by_name = {n.name: n for n in nodes}
    if imp.direction == "both":
        return [(n, [p.ip for p in cfg.peers_of(n.name)]) for n in nodes]
    src, _, dst = imp.direction.partition("->")
    if src not in by_name or dst not in by_name or src == dst:
        raise UserError(f"impairment direction {imp.direction!r}: name two nodes, e.g. "
                        f"{nodes[0].name}->{nodes[-1].name}")
    return [(by_name[dst], [cfg.node(src).ip])]


def _private_interface(node: Node, ip: str) -> str:
    out = node.run(f"ip -o -4 addr show to {shlex.quote(ip)}").stdout.split()
    if len(out) < 2:
        raise UserError(f"{node.name}: no interface holds {ip}; is the node up?")
    return out[1]


def _rule_specs(imp: Impairment, sources: list[str]) -> list[str]:
    match = " -m statistic --mode random --probability " + f"{imp.percent / 100:.4f}" if imp.kind == "loss" else ""
    specs = []
    for src in sources:
        for side in ("--dport", "--sport"):
            port = f" -p tcp {side} {imp.port}" if imp.port else ""
            specs.append(f"INPUT -s {src}{port}{match} -m comment --comment {COMMENT} -j DROP")
    return specs


def apply(cfg: ClusterConfig, nodes: Sequence[Node], imp: Impairment) -> Applied:
    applied = Applied(imp)
    for node, sources in _targets(cfg, nodes, imp):
        if imp.kind in ("partition", "loss"):
            lines = []
            for spec in dict.fromkeys(_rule_specs(imp, sources)):
                # above each DROP, a rule without a target that only counts what reaches it
                counting = spec.replace(f" --comment {COMMENT} -j DROP", f" --comment {SEEN}")
                counting = re.sub(r" -m statistic --mode random --probability \S+", "", counting)
                lines += [counting, spec]
            # One atomic batch at the top of INPUT: no packet is dropped before its counter is there.
            batch = "*filter\n" + "".join(f"-I INPUT {i} {line.removeprefix('INPUT ')}\n"
                                           for i, line in enumerate(lines, start=1)) + "COMMIT\n"
            res = node.run(f"printf %s {shlex.quote(batch)} | iptables-restore -w --noflush")
            if not res.ok:
                raise UserError(f"{node.name}: iptables-restore refused the impairment: {res.stderr.strip()}")
        else:
            dev = _private_interface(node, cfg.node(node.name).ip)
            qdisc = (f"tbf rate {imp.rate} burst 32kbit latency 400ms" if imp.kind == "rate"
                     else f"netem delay {imp.delay_ms}ms {imp.jitter_ms}ms")
            res = node.run(f"tc qdisc replace dev {dev} root {qdisc}")
            if not res.ok:
                if "qdisc kind is unknown" in res.stderr and imp.kind == "delay":
                    raise UserError(NO_NETEM)
                raise UserError(f"{node.name}: tc refused {qdisc}: {res.stderr.strip()}")
        applied.nodes.append(node.name)
    return applied


def counters(node: Node) -> tuple[int, int]:
    """(packets that reached the impairment, packets its DROP rules dropped) on this node."""
    seen = dropped = 0
    for line in node.run("iptables -w -L INPUT -n -v -x").stdout.splitlines():
        cells = line.split()
        if not cells or not cells[0].isdigit():
            continue
        if f"/* {SEEN} */" in line:
            seen += int(cells[0])
        elif f"/* {COMMENT} */" in line:
            dropped += int(cells[0])
    return seen, dropped


def clear(cfg: ClusterConfig, nodes: Sequence[Node], applied: Applied | None = None) -> None:
    """Remove every rule with the comment and the private interface's root qdisc (idempotent)."""
    for node in nodes:
        if applied is not None:
            seen, dropped = counters(node)
            applied.seen += seen
            applied.dropped += dropped
        rules = node.run("iptables -w -S INPUT").stdout.splitlines()
        for rule in rules:
            if COMMENT in rule and rule.startswith("-A "):
                node.run(f"iptables -w -D {rule[3:]}")
        dev = _private_interface(node, cfg.node(node.name).ip)
        node.run(f"tc qdisc show dev {dev} | grep -qE 'qdisc (tbf|netem)' && tc qdisc del dev {dev} root || true")


def netem_missing(node: Node) -> str:
    """NO_NETEM where the kernel lacks sch_netem (probed on a dummy device), else ''."""
    res = node.run("ip link add calicolab-probe type dummy 2>/dev/null; "
                   "tc qdisc add dev calicolab-probe root netem delay 1ms; rc=$?; "
                   "ip link del calicolab-probe 2>/dev/null; exit $rc")
    return NO_NETEM if not res.ok else ""


@contextlib.contextmanager
def held(cfg: ClusterConfig, nodes: Sequence[Node], imp: Impairment) -> Iterator[Applied]:
    """Apply now, clear on leaving (also on an error)."""
    began = time.monotonic()
    applied = apply(cfg, nodes, imp)
    try:
        yield applied
    finally:
        clear(cfg, nodes, applied)
        applied.seconds = time.monotonic() - began


class Timed:
    """An impairment for `seconds`, applied once `when(nodes)` holds (polled; at once without it),
    from a thread with connections of its own, while the caller's connections run something else.
    join() waits for it to be lifted and re-raises what went wrong in the thread."""

    def __init__(self, cfg: ClusterConfig, imp: Impairment, seconds: float,
                 when: Callable[[dict[str, Node]], bool] | None = None, deadline: float = 300) -> None:
        self.cfg, self.imp, self.seconds, self.when, self.deadline = cfg, imp, seconds, when, deadline
        self.applied = Applied(imp)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="impairment")

    def start(self) -> Timed:
        self._thread.start()
        return self

    def _run(self) -> None:
        own = cluster_nodes.from_run(self.cfg)
        nodes = list(own.values())
        try:
            if self.when is not None:
                wait_for(lambda: self._stop.is_set() or self.when(own), bool,
                         f"the moment to apply {self.imp.describe()}", timeout=self.deadline, interval=0.2)
            if self._stop.is_set():
                return
            with held(self.cfg, nodes, self.imp) as applied:
                self.applied = applied
                self._stop.wait(self.seconds)
        except BaseException as err:  # noqa: BLE001 (handed to join)
            self.error = err
        finally:
            cluster_nodes.close_all(nodes)

    def join(self) -> Applied:
        self._thread.join(timeout=self.deadline + self.seconds + 60)
        if self.error is not None:
            raise self.error
        return self.applied

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

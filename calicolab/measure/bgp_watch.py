"""BGP sessions watched through a measured window (a fault, a rehearsal, a drill): BIRD's logging
turned to debug for the window through Calico's own key, both nodes' BIRD logs read after it,
and every dropped session classified by BIRD's own words (calicolab.stack.parsers.bgp_drops).

calico/node 2.6.1's confd renders `/calico/bgp/v1/global/loglevel` into bird.cfg
(bird.cfg.mesh.template's LOGGING: "debug" -> `debug all;`, else `debug { states };`; a node's
`/calico/bgp/v1/host/<node>/loglevel` wins over it) and reloads BIRD. At info level BIRD logs a
collision's Cease 7 but not the graceful-restart and connection lines that tell shape A, so the
window asks for debug and puts the old values back after it.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from calicolab.core.config import ClusterConfig
from calicolab.core.errors import StageFailed
from calicolab.core.polling import Timeout, wait_for
from calicolab.core.remote import Node
from calicolab.stack import etcd_query, parsers, probes

GLOBAL_KEY = "/calico/bgp/v1/global/loglevel"
HOST_KEY = "/calico/bgp/v1/host/{node}/loglevel"
DEBUG = "debug"
# confd polls every 5 s (calico/node 2.6.1: -interval=5), BIRD scans interfaces every 2 s
# (`scan time 2` in the template's device protocol): debug shows within seconds; a loaded lab more.
IN_EFFECT_DEADLINE = 60
# BIRD's own lines (nest/config.c config_done: "Reconfigured"; sysdep/unix/main.c at start:
# "Started"; the device protocol's D_EVENTS trace, debug only: "Scanning interfaces").
_NEW_CONFIG = re.compile(r" bird: (Reconfigured|Started)$")
_DEBUG_LINE = re.compile(r" bird: \w+: Scanning interfaces$")


def debug_in_effect(log: str) -> bool:
    """Whether BIRD logs at debug: a debug-only line after the last configuration it took (a
    reconfiguration, or a start: a BIRD restarted at info level logs no debug line after it)."""
    lines = log.splitlines()
    last = max((i for i, line in enumerate(lines) if _NEW_CONFIG.search(line)), default=-1)
    return any(_DEBUG_LINE.search(line) for line in lines[last + 1:])


@dataclass
class BgpWatch:
    """One window's BGP view: the keys it changed (key -> old value, None: absent), the log marks,
    and what the logs showed afterwards."""

    cfg: ClusterConfig
    nodes: list[Node]
    saved: dict[str, str | None] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)
    drops: list[parsers.BgpDrop] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)

    def _etcd(self) -> tuple[Node, str]:
        node = self.nodes[0]
        return node, self.cfg.node(node.name).ip

    def start(self, wait: bool = True) -> None:
        """Debug on; with wait, until every running BIRD logs at debug (without: BIRD is stopped
        and reads the level when it starts, as in the restore drill)."""
        node, ip = self._etcd()
        keys = [GLOBAL_KEY] + [HOST_KEY.format(node=n.name) for n in self.nodes]
        for key in keys:
            old = etcd_query.v2_get(node, ip, key)
            if key != GLOBAL_KEY and old is None:
                continue  # no node-specific level: the global one applies
            self.saved[key] = old
        self.marks = {n.name: probes.log_mark(n) for n in self.nodes}
        for key, old in self.saved.items():
            if old != DEBUG:
                res = etcd_query.v2_put(node, ip, key, DEBUG)
                if not res.ok:
                    raise StageFailed(f"setting {key} to debug failed: {res.describe()}")
        if wait:
            self.in_effect()

    def in_effect(self) -> None:
        """Wait until every running BIRD logs at debug since the marks, then mark the logs again:
        a window's log starts there. A watch held across windows (a pass of faults) calls it at
        each window's start; it answers at the first poll while the level holds."""
        try:
            wait_for(lambda: [n.name for n in self.nodes
                              if not debug_in_effect(probes.log_since(n, self.marks[n.name]))],
                     lambda waiting: not waiting, "BIRD logging at debug on every node",
                     timeout=IN_EFFECT_DEADLINE, interval=0.25)
        except Timeout as err:
            self.restore()
            raise StageFailed(f"BIRD did not log at debug within {IN_EFFECT_DEADLINE} s of {GLOBAL_KEY}=debug "
                              f"(still waiting on {err.last}): confd did not render it or BIRD did not reload; "
                              f"see {probes.BIRD_LOG}") from None
        # The window's log starts here: the reload's own lines are not part of it.
        self.marks = {n.name: probes.log_mark(n) for n in self.nodes}

    def read(self) -> list[parsers.BgpDrop]:
        """Every session dropped in the window, from both nodes' logs."""
        self.logs = {n.name: probes.log_since(n, self.marks[n.name]) for n in self.nodes}
        self.drops = parsers.bgp_drops(self.logs)
        return self.drops

    def restore(self) -> None:
        node, ip = self._etcd()
        for key, old in self.saved.items():
            if old == DEBUG:
                continue
            if old is None:
                etcd_query.v2_delete(node, ip, key)
            else:
                etcd_query.v2_put(node, ip, key, old)
        self.saved = {}


@contextlib.contextmanager
def watched(cfg: ClusterConfig, nodes: Sequence[Node], say: Callable[[str], None] = print) -> Iterator[BgpWatch]:
    """BIRD at debug on every node for the block; the drops are read (watch.read()) by the
    caller before it leaves the block; the log level is put back however it ends."""
    watch = BgpWatch(cfg, list(nodes))
    watch.start()
    say(f"    BGP logging at debug for the window ({GLOBAL_KEY}; put back after)")
    try:
        yield watch
    finally:
        watch.restore()


class Querier:
    """Both BIRDs asked for their protocols every `interval` s for the block (lab evidence: the
    checks' calicoctl calls ask BIRD like this, and collisions are frequent under it). The loop
    runs inside calico-node against BIRD's socket, so the interval is BIRD's, not SSH's; it is
    stopped by its own pid, and counts its questions."""

    PID, COUNT = "/tmp/calicolab-bird-query.pid", "/tmp/calicolab-bird-query.count"

    def __init__(self, nodes: Sequence[Node], interval: float) -> None:
        self.nodes, self.interval = list(nodes), interval
        self.asked = 0

    def __enter__(self) -> Querier:
        ask = (f"for c in birdcl birdc; do command -v $c >/dev/null && exec $c -s {probes.BIRD_CTL} show protocols; "
               "done")
        loop = (f"echo $$ > {self.PID}; n=0; while :; do sh -c {shlex.quote(ask)} >/dev/null 2>&1; n=$((n+1)); "
                f"echo $n > {self.COUNT}; sleep {self.interval:g}; done")
        for node in self.nodes:
            node.run(f"docker exec -d calico-node sh -c {shlex.quote(loop)}", check=True)
        return self

    def __exit__(self, *_: object) -> None:
        for node in self.nodes:
            res = node.run(f"docker exec calico-node sh -c 'kill $(cat {self.PID}) && cat {self.COUNT}'")
            self.asked += int(res.stdout.strip() or 0) if res.stdout.strip().isdigit() else 0

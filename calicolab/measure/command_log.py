"""What a test pass asked of the nodes, and how long those commands need on their own.

`invoke bench --suite read-only` runs the read-only pass with a command log (e2e/conftest.py
records every node command: node, test, start, seconds, exit); afterwards, on the same cluster,
the floor is measured: each node's commands back to back, both nodes at once, no pytest. The
ratio of the pass's wall time to that floor is what the pass spends on anything but the commands
themselves (interpreter and worker start, fixtures, polling, waiting on each other).

Commands replay as they were asked, except those of the tests that act on the cluster (the
`creates` folder, e2e/workloads: networks, containers, probes); replayed on their own they would
act again or fail fast on what is gone, so their floor is the time the node was busy with them in
the pass: the union of their intervals, since probes run at once (the sum of 2 s timeouts of a
concurrent round would count one round five times). That is an upper bound: the floor is, if
anything, overstated, and the ratio understated.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

ACTING = ("e2e/workloads/",)  # tests whose commands change the cluster: timed in the pass, not replayed


class Runs(Protocol):
    name: str

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120): ...


@dataclass(frozen=True)
class Call:
    node: str
    cmd: str
    test: str  # pytest's current test id ("path::name (call)"), "" outside a test
    start: float  # wall clock
    seconds: float
    rc: int

    @property
    def acting(self) -> bool:
        return self.test.startswith(ACTING)


class Recorder:
    """Appends one JSON line per command to <folder>/commands-<pid>.jsonl (one file per pytest
    worker process, so no two processes write one file)."""

    def __init__(self, folder: Path, current_test: Callable[[], str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"commands-{os.getpid()}.jsonl"
        self.current_test = current_test
        self.lock = threading.Lock()

    def wrap(self, node: Runs) -> None:
        run = node.run

        def recorded(cmd: str, **kwargs):
            __tracebackhide__ = True
            start, t0 = time.time(), time.monotonic()
            result = run(cmd, **kwargs)
            call = Call(node.name, cmd, self.current_test(), round(start, 3), round(time.monotonic() - t0, 4),
                        int(getattr(result, "rc", -1)))
            with self.lock, self.path.open("a") as f:
                f.write(json.dumps(asdict(call)) + "\n")
            return result

        node.run = recorded  # type: ignore[method-assign]


def read(folder: Path) -> list[Call]:
    calls = []
    for path in sorted(folder.glob("commands-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                calls.append(Call(**json.loads(line)))
    return sorted(calls, key=lambda c: c.start)


@dataclass(frozen=True)
class NodeFloor:
    node: str
    commands: int
    replayed: int
    replay_seconds: float  # the replayable commands back to back
    acting_seconds: float  # the acting commands: how long the node was busy with them in the pass
    pass_seconds: float  # every command's own time in the pass, summed

    @property
    def seconds(self) -> float:
        return round(self.replay_seconds + self.acting_seconds, 2)


def replay(calls: Sequence[Call], nodes: Mapping[str, Runs]) -> list[NodeFloor]:
    """Each node's commands back to back (the acting ones counted at their pass time), both
    nodes at once. The node's connection is opened before the clock starts: the pass opens one
    per worker too, and its cost is not a command's."""
    by_node: dict[str, list[Call]] = {}
    for call in calls:
        by_node.setdefault(call.node, []).append(call)

    def one(name: str) -> NodeFloor:
        mine = by_node[name]
        node = nodes[name]
        node.run("true")  # connect
        replayable = [c for c in mine if not c.acting]
        t0 = time.monotonic()
        for call in replayable:
            node.run(call.cmd, timeout=max(30.0, call.seconds * 4))
        replayed = time.monotonic() - t0
        acting = busy([(c.start, c.start + c.seconds) for c in mine if c.acting])
        return NodeFloor(name, len(mine), len(replayable), round(replayed, 2), round(acting, 2),
                         round(sum(c.seconds for c in mine), 2))

    with ThreadPoolExecutor(max_workers=max(1, len(by_node))) as pool:
        return list(pool.map(one, sorted(by_node)))


def busy(intervals: Sequence[tuple[float, float]]) -> float:
    """Seconds covered by at least one interval (overlapping commands counted once)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def floor_seconds(floors: Sequence[NodeFloor]) -> float:
    """Both nodes at once: the slower node is the floor."""
    return max((f.seconds for f in floors), default=0.0)

"""etcd's leader, watched while a rehearsal runs: leader changes and time without a leader.

One thread per member on the host polls the member's maintenance Status through the JSON
gateway (`/v3beta` on 3.3, `/v3` from 3.4, as etcd_client picks it) every POLL seconds and
keeps (time, member, leader, term). Raft has at most one leader per term, so an election that
produced a leader shows as a new (leader, term) pair, with one exception: etcd's Status reads
the leader and the term one after the other (etcdserver's maintenance Status), so a sample taken
while a member applies an election can name the new leader with the old term; seen here after a
leadership transfer as (B, 2) and 0.1 s later (B, 3). So a new pair counts as an election when
its leader differs from the last one seen, or when some member named no leader since: a leader
re-elected in a later term was first seen to step down, which takes an election timeout
(1 s by default) and cannot fall between two polls 0.1 s apart. The cluster is without a leader
while no reachable member names one (a member that is down or a candidate names none; the JSON
gateway leaves a zero leader out).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from calicolab.etcd_history import etcd_client

POLL = 0.1  # seconds between one member's polls


@dataclass(frozen=True)
class Sample:
    at: float  # wall clock
    member: str
    leader: str  # "" when the member names none or did not answer
    term: int
    answered: bool


@dataclass
class LeaderFigures:
    changes: list[float] = field(default_factory=list)  # wall clock of each new leader
    leaderless: list[tuple[float, float]] = field(default_factory=list)  # (start, end) intervals
    samples: int = 0

    def changes_in(self, start: float, end: float) -> int:
        return sum(1 for t in self.changes if start <= t < end)

    def leaderless_in(self, start: float, end: float) -> float:
        return round(sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.leaderless), 3)


def analyze(samples: Sequence[Sample]) -> LeaderFigures:
    """Leader changes after the first leader seen, and the intervals in which no member named one."""
    fig = LeaderFigures(samples=len(samples))
    down_since: float | None = None
    latest: dict[str, Sample] = {}
    last: tuple[str, int] | None = None  # the last (leader, term) counted
    stepped_down = False  # some member named no leader since `last` was seen
    for s in sorted(samples, key=lambda s: s.at):
        latest[s.member] = s
        if s.answered and s.leader:
            if last is None:
                last = (s.leader, s.term)
            elif s.term > last[1] and (s.leader != last[0] or stepped_down):
                fig.changes.append(s.at)
                last, stepped_down = (s.leader, s.term), False
            elif s.term > last[1]:
                last = (s.leader, s.term)  # the same election, its term read late
        elif s.answered and last is not None:
            stepped_down = True
        has_leader = any(x.answered and x.leader for x in latest.values())
        if not has_leader and down_since is None:
            down_since = s.at
        elif has_leader and down_since is not None:
            fig.leaderless.append((down_since, s.at))
            down_since = None
    if down_since is not None and samples:
        fig.leaderless.append((down_since, max(s.at for s in samples)))
    return fig


class Watcher:
    """Poll every member from start() until stop(); stop() returns the samples."""

    def __init__(self, endpoints: dict[str, etcd_client.Endpoint]) -> None:
        self.endpoints = endpoints
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _poll(self, name: str, ep: etcd_client.Endpoint) -> None:
        client = etcd_client.Client(ep, etcd_client.Recorder(os.devnull), f"leader/{name}")
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                body = client._v3_call("maintenance/status", {}).body
                leader = str(body.get("leader") or "")
                sample = Sample(time.time(), name, "" if leader == "0" else leader,
                                int(body.get("raftTerm", 0) or 0), True)
            except (etcd_client.NotSent, etcd_client.Unknown, etcd_client.Definite, ValueError, KeyError):
                sample = Sample(time.time(), name, "", 0, False)
            with self._lock:
                self.samples.append(sample)
            self._stop.wait(max(0.0, POLL - (time.monotonic() - began)))

    def start(self) -> None:
        for name, ep in self.endpoints.items():
            t = threading.Thread(target=self._poll, args=(name, ep), daemon=True, name=f"leader-{name}")
            t.start()
            self._threads.append(t)

    def stop(self) -> list[Sample]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=etcd_client.TIMEOUT + 2)
        with self._lock:
            return sorted(self.samples, key=lambda s: s.at)


def to_json(samples: Sequence[Sample]) -> list[dict]:
    return [asdict(s) for s in samples]


def from_json(data: Sequence[dict]) -> list[Sample]:
    return [Sample(**d) for d in data]

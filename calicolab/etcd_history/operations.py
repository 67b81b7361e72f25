"""etcd client histories: the operations clients ran while an upgrade or a fault ran, and what
they saw, as recorded by calicolab/etcd_history/etcd_client.py (JSON lines, one per event).

An operation is invoked, then ends one of three ways: `ok` (etcd answered; for a
compare-and-swap, create or delete, `succeeded` says whether it applied), `fail` (it certainly
did not happen: the connection was refused, or etcd refused the request before proposing it)
or `info` (indeterminate: a timeout, a reset connection or a 5xx after the request was sent;
it may or may not have taken effect, at any time after its invocation). An invocation with no
end line is indeterminate too (the client was stopped while it was in flight).

The checks over a history live here (lost acknowledged writes, local reads, watches); the
linearizability search is calicolab/etcd_history/linearizability.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

WRITES = ("put", "cas_value", "cas_index", "create", "delete")
READS = ("get", "get_local")


@dataclass
class Op:
    """One client operation on one key. `index` is what etcd returned: for a write that applied,
    the key's new modifiedIndex (v2) or mod_revision (v3); for a read that found the key, its
    modifiedIndex / mod_revision."""

    id: str
    process: str
    api: str  # v2 | v3
    f: str  # put | get | get_local | cas_value | cas_index | create | delete
    key: str
    invoke: float  # time.monotonic() on the recording host
    value: str | None = None  # written by put / cas_* / create
    expect: str | int | None = None  # cas_value: the previous value; cas_index: the previous index
    complete: float | None = None  # when it ended; None: never answered. An `info` op may apply even later
    outcome: str = "info"  # ok | fail | info
    succeeded: bool | None = None  # cas_*, create, delete: whether it applied
    found: bool | None = None  # get*: whether the key existed
    read: str | None = None  # get*: the value read
    index: int | None = None
    member_index: int | None = None  # get_local: the member's store index (X-Etcd-Index)
    endpoint: str = ""
    error: str = ""

    @property
    def definite(self) -> bool:
        return self.outcome == "ok"

    @property
    def applied(self) -> bool:
        """An acknowledged write that took effect."""
        return self.outcome == "ok" and self.f in WRITES and (self.f == "put" or bool(self.succeeded))

    def describe(self) -> str:
        """One readable line: when, who, what, and what came back."""
        end = f"{self.complete:.3f}" if self.complete is not None else "never"
        what = {"put": f"put {self.value!r}", "get": "get (quorum)", "get_local": "get (local)",
                "cas_value": f"cas value {self.expect!r} -> {self.value!r}",
                "cas_index": f"cas index {self.expect} -> {self.value!r}",
                "create": f"create {self.value!r}", "delete": "delete"}.get(self.f, self.f)
        if self.outcome != "ok":
            got = f"{self.outcome.upper()} {self.error}".strip()
        elif self.f in READS:
            got = f"found {self.read!r} @{self.index}" if self.found else "not found"
        elif self.f == "put":
            got = f"ok @{self.index}"
        else:
            got = f"applied @{self.index}" if self.succeeded else f"not applied ({self.error or 'compare failed'})"
        return f"[{self.invoke:.3f} .. {end}] {self.process:<14} {self.api} {self.key} {what} => {got}"


@dataclass(frozen=True)
class WatchEvent:
    watcher: str
    key: str
    action: str  # set, update, create, compareAndSwap, delete, compareAndDelete, expire
    index: int
    value: str | None
    at: float


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    watches: dict[str, list[WatchEvent]] = field(default_factory=dict)  # per watcher
    watch_gaps: list[str] = field(default_factory=list)  # the watcher lost its place (history cleared)
    watch_from: dict[str, int] = field(default_factory=dict)  # each watcher's first waitIndex
    notes: list[str] = field(default_factory=list)  # what a client said (e.g. a planted fault)

    def of_api(self, api: str) -> list[Op]:
        return [op for op in self.ops if op.api == api]


def parse_lines(lines: Iterable[str], history: History | None = None) -> History:
    """Build a history from the client's JSON lines (invoke, then ok / fail / info by id)."""
    history = history or History()
    pending: dict[str, Op] = {}
    for raw in lines:
        raw = raw.strip()
        if not raw:
            continue
        rec = json.loads(raw)
        kind = rec.pop("type")
        if kind == "invoke":
            op = Op(**{k: v for k, v in rec.items() if k in Op.__dataclass_fields__})
            pending[op.id] = op
            history.ops.append(op)
        elif kind in ("ok", "fail", "info"):
            op = pending.pop(rec["id"])
            op.outcome = kind
            for k, v in rec.items():
                if k != "id" and k in Op.__dataclass_fields__:
                    setattr(op, k, v)
        elif kind == "watch":
            history.watches.setdefault(rec["watcher"], []).append(WatchEvent(**rec))
        elif kind == "watch-start":
            history.watch_from[rec["watcher"]] = rec["index"]
            history.watches.setdefault(rec["watcher"], [])
        elif kind == "watch-gap":
            history.watch_gaps.append(f"{rec['watcher']}: {rec['error']}")
        elif kind == "note":
            history.notes.append(rec["text"])
    return history  # what stays in `pending` never ended: indeterminate, as Op's default says


def load(paths: Iterable[Path]) -> History:
    history = History()
    for path in paths:
        parse_lines(path.read_text().splitlines(), history)
    return history


def dump(history: History, path: Path) -> None:
    """The history as one JSON document (what reports keep and the e2e grading reads back)."""
    path.write_text(json.dumps({
        "ops": [asdict(op) for op in history.ops],
        "watches": {w: [asdict(e) for e in events] for w, events in history.watches.items()},
        "watch_gaps": history.watch_gaps, "watch_from": history.watch_from, "notes": history.notes,
    }) + "\n")


def read_dump(path: Path) -> History:
    data = json.loads(path.read_text())
    return History(ops=[Op(**op) for op in data["ops"]],
                   watches={w: [WatchEvent(**e) for e in events] for w, events in data["watches"].items()},
                   watch_gaps=data["watch_gaps"], watch_from=data["watch_from"], notes=data["notes"])


def render(ops: Iterable[Op]) -> str:
    return "\n".join(op.describe() for op in sorted(ops, key=lambda o: o.invoke))


# -- checks beyond linearizability ------------------------------------------------------------

def lost_writes(ops: list[Op], final: dict[str, Op]) -> list[str]:
    """Acknowledged writes the final reads prove lost. Indices only grow, so a key's final index
    is at least that of its last acknowledged write; a key found absent must have a delete
    (acknowledged or indeterminate) invoked after the write completed."""
    lost = []
    for op in ops:
        if not op.applied or op.f == "delete" or op.key not in final:
            continue
        end = final[op.key]
        if end.found and end.index is not None and op.index is not None and end.index < op.index:
            lost.append(f"{op.describe()}  -- but the final read found {end.read!r} @{end.index}")
        elif not end.found:
            deletes = [d for d in ops if d.key == op.key and d.f == "delete" and d.outcome != "fail"
                       and (d.outcome == "info" or d.complete is None or d.complete >= op.invoke)
                       and (d.outcome == "info" or d.succeeded)]
            if not deletes:
                lost.append(f"{op.describe()}  -- but the final read found no key and nothing deleted it")
    return lost


def local_read_problems(ops: list[Op]) -> list[str]:
    """v2 reads without quorum come from one member's store and may be stale, but only ever a
    value some write put there (invoked before the read returned), with that write's index,
    and a member's store index never goes back between one client's reads of it."""
    writes: dict[tuple[str, str | None], list[Op]] = {}
    for op in ops:
        if op.f in WRITES and op.f != "delete" and op.outcome != "fail":
            writes.setdefault((op.key, op.value), []).append(op)
    problems = []
    last: dict[tuple[str, str], tuple[int, Op]] = {}
    for op in sorted((o for o in ops if o.f == "get_local" and o.outcome == "ok"), key=lambda o: o.invoke):
        if op.found:
            made = [w for w in writes.get((op.key, op.read), []) if op.complete is None or w.invoke <= op.complete]
            if not made:
                problems.append(f"{op.describe()}  -- no write of that value was invoked before this read")
            elif all(w.outcome == "ok" and w.index != op.index for w in made):
                problems.append(f"{op.describe()}  -- the write of that value was acknowledged at index "
                                f"{made[0].index}")
        if op.member_index is not None:
            where = (op.process, op.endpoint)
            if where in last and op.member_index < last[where][0]:
                problems.append(f"{op.describe()}  -- member store index {op.member_index} after "
                                f"{last[where][0]} in this client's previous read")
            last[where] = (op.member_index, op)
    return problems


def watch_problems(history: History) -> list[str]:
    """A v2 watch from a known index on the keys' folder must see every change there, in index
    order, with nothing missing: each acknowledged write exactly at its index, and no change no
    client asked for (an indeterminate write may show up, or not)."""
    v2 = history.of_api("v2")
    acked = {op.index: op for op in v2 if op.applied and op.index is not None}
    maybe = [op for op in v2 if op.f in WRITES and op.outcome == "info"]
    problems = list(history.watch_gaps)
    for watcher, events in history.watches.items():
        start = history.watch_from.get(watcher, 0)
        seen: dict[int, WatchEvent] = {}
        previous = 0
        for ev in events:
            if ev.index <= previous:
                problems.append(f"{watcher}: event @{ev.index} on {ev.key} came after @{previous} (out of order)")
            previous = max(previous, ev.index)
            seen[ev.index] = ev
            op = acked.get(ev.index)
            deleting = ev.action in ("delete", "compareAndDelete")
            if op is not None:
                if op.key != ev.key or (op.f == "delete") != deleting or (not deleting and op.value != ev.value):
                    problems.append(f"{watcher}: event @{ev.index} {ev.action} {ev.key}={ev.value!r} is not the "
                                    f"acknowledged write at that index: {op.describe()}")
            elif not any(m.key == ev.key and (m.f == "delete") == deleting and (deleting or m.value == ev.value)
                         for m in maybe):
                problems.append(f"{watcher}: event @{ev.index} {ev.action} {ev.key}={ev.value!r} matches no write "
                                "any client invoked (a change nobody asked for, or a write lost and replaced)")
        last = max(seen, default=start - 1)
        for index, op in sorted(acked.items()):
            if start <= index <= last and index not in seen:
                problems.append(f"{watcher}: missed the acknowledged write @{index}: {op.describe()}")
            elif index > last:
                problems.append(f"{watcher}: stopped at @{last} before the acknowledged write @{index}: "
                                f"{op.describe()}")
    return problems

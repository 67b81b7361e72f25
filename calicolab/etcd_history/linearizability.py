"""Is a client history linearizable? A Wing-Gong search with Lowe's memoization, per key.

Every key of etcd is an independent register (a linearizable store is linearizable per key, and
a history is linearizable iff each key's sub-history is), so the search runs key by key. Its
model is a register holding (value, index): put, get, delete, compare-and-swap on the value and
on the index (v2 prevValue / prevIndex, v3 txn on value / mod_revision), create-if-absent
(v2 prevExist=false, v3 txn on create_revision = 0). Indices only grow.

The search (Wing & Gong 1993; Lowe, "Testing for linearizability", 2017): walk the calls and
returns in time order; linearize a pending call whose effect the model accepts, or, on
reaching a return whose call is not linearized yet, undo the last choice. A cache of
(linearized set, model state) prunes configurations already explored, which keeps the cost
near linear for histories with few concurrent clients.

Indeterminate operations return at +infinity: they may take effect at any point after their
invocation, or never (placed after every other operation, an unobserved write is the same as
one that never happened). Their outcome is unknown, so the model is nondeterministic (a CAS
may have applied or not; a write's new index is unknown); states are sets of model states, as
in Porcupine's treatment of nondeterministic models. An unknown index is None, and a read
that sees the key settles it.

Reads without quorum (v2 `quorum=false`) are served from one member's store and need not be
linearizable; operations.local_read_problems checks what they may return instead.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from calicolab.etcd_history.operations import Op

State = tuple[str | None, int | None]  # (value or None when absent, index or None when unknown)
ABSENT: State = (None, None)
DEFAULT_BUDGET = 2_000_000  # search steps per key before giving up (says so; never a silent pass)


def _newer(state: State, index: int | None) -> bool:
    return index is None or state[1] is None or index > state[1]


def _write(state: State, op: Op, applies: bool) -> list[State]:
    """The states after op when it applies (or not), given what came back."""
    if not applies:
        return [state]
    if op.f == "delete":
        return [ABSENT]
    index = op.index if op.outcome == "ok" else None
    return [(op.value, index)] if _newer(state, index) else []


def _compare(state: State, op: Op) -> bool | None:
    """Whether op's condition holds in state; None when the state cannot tell (index unknown)."""
    value, index = state
    if op.f == "cas_value":
        return value is not None and value == op.expect
    if op.f == "cas_index":
        if value is None:
            return False
        return None if index is None else index == op.expect
    if op.f == "create":
        return value is None
    if op.f == "delete":
        return value is not None
    raise ValueError(f"not a conditional operation: {op.f}")


def step(state: State, op: Op) -> list[State]:
    """The register's possible states after op in state, consistent with what op returned; none
    when op's result is impossible there."""
    value, index = state
    if op.f == "get":
        if op.outcome != "ok":
            return [state]  # a read with no answer tells nothing
        if not op.found:
            return [state] if value is None else []
        if value != op.read or (index is not None and op.index is not None and index != op.index):
            return []
        return [(value, op.index if op.index is not None else index)]
    if op.f == "put":
        return _write(state, op, True)
    holds = _compare(state, op)
    if op.outcome == "ok":
        if op.succeeded:
            return _write(state, op, True) if holds in (True, None) else []
        return [state] if holds in (False, None) else []
    # Indeterminate: applied or not, whichever the state allows.
    out = [] if holds is False else _write(state, op, True)
    return out + ([state] if holds is not True else [])


@dataclass
class KeyResult:
    key: str
    ok: bool
    ops: int
    steps: int = 0
    exhausted: bool = False  # the budget ran out: neither proven nor refuted
    # On failure: the longest linearization found, the state it reached, and the operations
    # none of which could come next (the first of them had to, by its return time).
    prefix: list[Op] = field(default_factory=list)
    state: frozenset[State] = frozenset()
    stuck: list[Op] = field(default_factory=list)

    def explain(self, context: int = 8) -> str:
        if self.ok:
            return f"{self.key}: linearizable ({self.ops} operations, {self.steps} steps)"
        if self.exhausted:
            return (f"{self.key}: undecided after {self.steps} search steps ({self.ops} operations): "
                    "too many concurrent operations for the budget")
        states = ", ".join(f"{v!r} @{i}" if v is not None else "absent" for v, i in sorted(self.state, key=str))
        lines = [f"{self.key}: NOT linearizable ({self.ops} operations).",
                 f"  the longest order found takes {len(self.prefix)} operations; its last ones:"]
        lines += [f"    {op.describe()}" for op in self.prefix[-context:]]
        lines.append(f"  the register then holds: {states or 'nothing possible'}")
        lines.append("  and none of these can come next (the first must, before it returned):")
        lines += [f"    {op.describe()}" for op in self.stuck]
        return "\n".join(lines)


def check_key(key: str, ops: list[Op], initial: State = ABSENT, budget: int = DEFAULT_BUDGET) -> KeyResult:
    ops = [op for op in ops if op.outcome != "fail" and op.f != "get_local"]
    n = len(ops)
    # Entries 1..2n: calls (even offsets) and returns; 0 is the list head. Calls sort before
    # returns at the same instant, so touching operations count as concurrent (never a false alarm).
    # An indeterminate operation returns at +infinity even when the client noted when it gave up:
    # etcd may still apply it after that.
    def returns(op: Op) -> float:
        return op.complete if op.outcome == "ok" and op.complete is not None else math.inf

    entries = sorted(range(2 * n), key=lambda e: (ops[e // 2].invoke if e % 2 == 0 else returns(ops[e // 2]), e % 2))
    nxt = [0] * (2 * n + 2)
    prv = [0] * (2 * n + 2)
    order = [0] + [e + 1 for e in entries] + [2 * n + 1]  # node ids: entry e is node e + 1
    for a, b in zip(order, order[1:], strict=False):
        nxt[a], prv[b] = b, a
    tail = 2 * n + 1

    def lift(i: int) -> None:
        for node in (2 * i + 1, 2 * i + 2):
            nxt[prv[node]], prv[nxt[node]] = nxt[node], prv[node]

    def unlift(i: int) -> None:
        for node in (2 * i + 2, 2 * i + 1):
            nxt[prv[node]], prv[nxt[node]] = node, node

    state: frozenset[State] = frozenset([initial])
    linearized = 0
    seen: set[tuple[int, frozenset[State]]] = set()
    stack: list[tuple[int, frozenset[State]]] = []  # (op index, state before it)
    result = KeyResult(key, True, n)
    best = -1
    node = nxt[0]
    steps = 0
    while nxt[0] != tail:
        steps += 1
        if steps > budget:
            result.ok, result.exhausted, result.steps = False, True, steps
            return result
        i, is_call = (node - 1) // 2, (node - 1) % 2 == 0
        if is_call:
            after = frozenset(s for st in state for s in step(st, ops[i]))
            if after:
                mark = linearized | (1 << i)
                if (mark, after) not in seen:
                    seen.add((mark, after))
                    stack.append((i, state))
                    state, linearized = after, mark
                    lift(i)
                    node = nxt[0]
                    continue
            node = nxt[node]
            continue
        # A return whose call could not be linearized: the last choice was wrong.
        if len(stack) > best:
            best = len(stack)
            result.prefix = [ops[j] for j, _ in stack]
            result.state = state
            pending, walk = [], nxt[0]
            while walk != node:
                pending.append(ops[(walk - 1) // 2])
                walk = nxt[walk]
            result.stuck = [ops[i]] + [p for p in pending if p is not ops[i]]
        if not stack:
            result.ok, result.steps = False, steps
            return result
        i, state = stack.pop()
        linearized &= ~(1 << i)
        unlift(i)
        node = nxt[2 * i + 1]
    result.steps = steps
    return result


@dataclass
class Verdict:
    api: str
    keys: list[KeyResult]

    @property
    def ok(self) -> bool:
        return all(k.ok for k in self.keys)

    @property
    def failures(self) -> list[KeyResult]:
        return [k for k in self.keys if not k.ok]

    def explain(self) -> str:
        bad = self.failures
        if not bad:
            return f"{self.api}: linearizable ({sum(k.ops for k in self.keys)} operations on {len(self.keys)} keys)"
        return "\n".join(k.explain() for k in bad)


def check(ops: list[Op], api: str, budget: int = DEFAULT_BUDGET) -> Verdict:
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        if op.api == api:
            by_key.setdefault(op.key, []).append(op)
    return Verdict(api, [check_key(k, by_key[k], budget=budget) for k in sorted(by_key)])


def simulate(ops: int, keys: int, clients: int, indeterminate: float = 0.02, seed: int = 1) -> list[Op]:
    """A linearizable history by construction, for the benchmark and the property tests: each
    client runs operations one after another; each takes effect on a real register at a random
    instant between its invocation and its answer, in that order. Some answers are lost
    (indeterminate); those still take effect, or not, at random."""
    rng = random.Random(seed)
    registers: dict[str, State] = {f"k{i}": ABSENT for i in range(keys)}
    index = 0
    clock = [rng.random() for _ in range(clients)]
    pending: list[tuple[float, int, Op]] = []  # (linearization instant, client, op)
    out: list[Op] = []
    kinds = ("put", "get", "cas_value", "cas_index", "create", "delete")
    for n in range(ops):
        c = min(range(clients), key=lambda i: clock[i])
        t0 = clock[c]
        t1 = t0 + rng.uniform(0.002, 0.03)
        key = rng.choice(list(registers))
        f = rng.choice(kinds)
        op = Op(id=str(n), process=f"c{c}", api="v2", f=f, key=key, invoke=t0, complete=t1,
                value=f"c{c}-{n}" if f not in ("get", "delete") else None)
        pending.append((rng.uniform(t0, t1), c, op))
        clock[c] = t1 + rng.uniform(0.0, 0.01)
        out.append(op)
    for _, _, op in sorted(pending, key=lambda p: p[0]):
        value, idx = registers[op.key]
        lost = rng.random() < indeterminate and op.f != "get"
        if op.f in ("cas_value", "cas_index"):
            op.expect = value if op.f == "cas_value" else idx
            if rng.random() < 0.3:  # a stale expectation: the compare fails
                op.expect = "stale" if op.f == "cas_value" else -1
        holds = {"put": True, "get": True, "cas_value": value is not None and value == op.expect,
                 "cas_index": value is not None and idx == op.expect, "create": value is None,
                 "delete": value is not None}[op.f]
        applies = holds and (not lost or rng.random() < 0.5)
        if op.f == "get":
            op.outcome, op.found, op.read, op.index = "ok", value is not None, value, idx
            continue
        if applies:
            index += 1
            registers[op.key] = ABSENT if op.f == "delete" else (op.value, index)
        if lost:
            op.outcome, op.complete = "info", None
            continue
        op.outcome = "ok"
        op.index = index if applies else None
        if op.f != "put":
            op.succeeded = applies
    return out

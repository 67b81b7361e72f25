"""Wait for a condition with a deadline instead of sleeping a fixed time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from calicolab.core.deadlines import deadline_factor
from calicolab.core.errors import UserError
from calicolab.core.remote import RemoteCommandFailed

T = TypeVar("T")
# What a probe may raise while its condition is simply not there yet: a node that drops its
# SSH connection while a service restarts, a command that fails, an answer that is not yet
# complete JSON or a number. Anything else (KeyError, TypeError, AttributeError, ...) is a bug
# in the probe and is raised at once, not turned into a timeout after the whole deadline.
NOT_YET: tuple[type[BaseException], ...] = (UserError, RemoteCommandFailed, OSError, ValueError)


class Timeout(Exception):
    """The condition did not hold before the deadline; carries the last value seen."""

    def __init__(self, what: str, seconds: float, last: object) -> None:
        super().__init__(f"{what}: not reached within {seconds:.0f} s (last seen: {last!r})")
        self.what, self.seconds, self.last = what, seconds, last


@dataclass(frozen=True)
class Waited:
    """Where one wait's time went. `needed` ends with the last poll that found the condition
    not there yet: the cluster took at least that long. `idle` is the sleep before the poll
    that found it: the condition may have held for all of it, so the wait overran by at most
    that. The rest is polling: the checks' own time."""

    what: str
    seconds: float
    polls: int
    slept: float
    needed: float
    idle: float
    ok: bool
    outer: bool  # on the main thread and inside no other wait: outer waits never overlap


# Every wait of this process, in order: the fault pass reports per test where its time went.
WAITS: list[Waited] = []
_inside = threading.local()

# The longest sleep between two polls: a condition that comes true is seen within a second
# (the fault pass waits for elections, BGP and unit restarts; a 2 s cap idled up to 2 s per wait).
MAX_INTERVAL = 1.0


def wait_for(probe: Callable[[], T], ok: Callable[[T], bool], what: str,
             timeout: float = 30.0, interval: float = 0.2,
             not_yet: tuple[type[BaseException], ...] = NOT_YET) -> T:
    """Call probe until ok(value) holds; raise Timeout with the last value otherwise.

    A probe raising one of `not_yet` counts as "not yet" (the error is the last value seen);
    any other exception propagates. The interval grows gently so fast conditions are seen at
    once and slow ones do not spin.
    """
    timeout *= deadline_factor()
    start = time.monotonic()
    deadline = start + timeout
    last: object = None
    polls, slept, needed, pause = 0, 0.0, 0.0, 0.0
    depth = getattr(_inside, "depth", 0)
    outer = depth == 0 and threading.current_thread() is threading.main_thread()
    _inside.depth = depth + 1

    def done(ok: bool) -> None:
        WAITS.append(Waited(what, round(time.monotonic() - start, 3), polls, round(slept, 3), round(needed, 3),
                            round(pause if ok else 0.0, 3), ok, outer))

    try:
        while True:
            polls += 1
            try:
                value = probe()
                last = value
                if ok(value):
                    done(True)
                    return value
            except not_yet as err:
                last = err
            needed = time.monotonic() - start
            if time.monotonic() >= deadline:
                done(False)
                raise Timeout(what, timeout, last)
            time.sleep(interval)
            slept, pause = slept + interval, interval
            interval = min(interval * 1.5, MAX_INTERVAL)
    finally:
        _inside.depth = depth

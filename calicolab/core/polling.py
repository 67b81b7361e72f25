"""Wait for a condition with a deadline instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Timeout(Exception):
    """The condition did not hold before the deadline; carries the last value seen."""

    def __init__(self, what: str, seconds: float, last: object) -> None:
        super().__init__(f"{what}: not reached within {seconds:.0f} s (last seen: {last!r})")
        self.what, self.seconds, self.last = what, seconds, last


def wait_for(probe: Callable[[], T], ok: Callable[[T], bool], what: str,
             timeout: float = 30.0, interval: float = 0.2) -> T:
    """Call probe until ok(value) holds; raise Timeout with the last value otherwise.

    The interval grows gently so fast conditions are seen at once and slow ones do not spin.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        try:
            last = probe()
            if ok(last):
                return last
        except Exception as err:  # a probe failing is just "not yet"
            last = err  # type: ignore[assignment]
        if time.monotonic() >= deadline:
            raise Timeout(what, timeout, last)
        time.sleep(interval)
        interval = min(interval * 1.5, 2.0)

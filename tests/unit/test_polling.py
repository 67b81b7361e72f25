"""wait_for: returns as soon as the condition holds, times out with the last value seen, and
lets a bug in a probe surface at once instead of after the whole deadline."""

from __future__ import annotations

import time

import pytest

from calicolab.core.errors import UserError
from calicolab.core.polling import Timeout, wait_for


def test_returns_the_first_value_that_holds():
    values = iter([1, 2, 3, 4])
    assert wait_for(lambda: next(values), lambda v: v == 3, "three", timeout=5, interval=0.01) == 3


def test_times_out_with_the_last_value_seen():
    with pytest.raises(Timeout) as err:
        wait_for(lambda: "still starting", lambda v: v == "up", "service", timeout=0.05, interval=0.01)
    assert err.value.last == "still starting"


def test_a_node_that_is_not_reachable_yet_is_retried():
    answers = iter([UserError("node1 is unreachable over SSH"), ValueError("Expecting value"), "up"])

    def probe() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_for(probe, lambda v: v == "up", "node", timeout=5, interval=0.01) == "up"


def test_a_bug_in_the_probe_is_raised_at_once_not_after_the_deadline():
    # The old wait_for caught every exception: a KeyError became a Timeout after `timeout` seconds.
    start = time.monotonic()
    with pytest.raises(KeyError):
        wait_for(lambda: {}["cali0"], bool, "address", timeout=30, interval=0.01)
    assert time.monotonic() - start < 5

"""wait_for: returns as soon as the condition holds, times out with the last value seen, and
lets a bug in a probe surface at once instead of after the whole deadline."""

from __future__ import annotations

import time

import pytest

from calicolab.core import polling
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


def test_each_wait_says_what_the_cluster_needed_and_how_long_it_idled():
    answers = iter([False, False, True])
    polling.WAITS.clear()
    polling.wait_for(lambda: next(answers), bool, "third time", timeout=10, interval=0.05)
    inner = iter([False, True])
    polling.wait_for(lambda: polling.wait_for(lambda: next(inner), bool, "inner", timeout=10, interval=0.01),
                     bool, "outer", timeout=10)
    third, nested, outer = polling.WAITS
    assert (third.what, third.polls, third.ok, third.outer) == ("third time", 3, True, True)
    assert third.slept == pytest.approx(0.05 + 0.075)
    assert third.idle == pytest.approx(0.075)  # the sleep before the poll that found it
    # The second poll failed after the first sleep; the wait ended after the second sleep.
    assert third.needed >= 0.05 and third.seconds >= third.needed + 0.075 - 1e-3
    assert (nested.what, nested.outer, outer.what, outer.outer) == ("inner", False, "outer", True)
    assert outer.idle == 0 and outer.polls == 1  # found at once: nothing idled

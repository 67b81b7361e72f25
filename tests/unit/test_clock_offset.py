"""Two nodes' clock offset read off the probes' datagrams: exact when both directions are equally
quick, bounded by half the quickest round trip when they are not, and absent without traffic.

Found on the Debian VM lane (TCG): the nodes' clocks were 0.65 s apart, and the probe-resolution
check, which sets the sender's stamps against the receiving node's, placed a 1 s blackhole 0.65 s
late. Expected values here are built from the clocks by hand, not from the code under test."""

from __future__ import annotations

import pytest

from calicolab.stack import disruption

IV = 0.01


def _log(n: int, wall0: float, mono_sender: float, mono_receiver: float, delay: float) -> str:
    """udp.log lines as the receiver writes them: a sender whose wall clock reads wall0 when its
    monotonic clock reads mono_sender; mono_receiver is the receiver's monotonic reading at that
    same instant; each datagram arrives `delay` later."""
    lines = []
    for seq in range(n):
        t = seq * IV
        lines.append(f"1 {seq} {round((mono_sender + t) * 1e9)} {round((wall0 + t) * 1e9)} "
                     f"{round((mono_receiver + t + delay) * 1e9)}")
    return "\n".join(lines) + "\n"


def _raw(skew: float, there: float, back: float) -> disruption.Raw:
    """node2's wall clock is `skew` ahead of node1's; node1's monotonic reads 500, node2's 9000."""
    wall1, mono1, mono2 = 1_700_000_000.0, 500.0, 9000.0
    return disruption.Raw(udp={
        "node1->node2": _log(300, wall1, mono1, mono2, there),
        "node2->node1": _log(300, wall1 + skew, mono2, mono1, back),
    })


def test_a_node_ahead_by_0_65_s_is_read_as_0_65_s_ahead():
    got = disruption.clock_offset(_raw(0.65, 0.002, 0.002), "node2", "node1")
    assert got is not None
    assert got.seconds == pytest.approx(0.65, abs=1e-3)
    assert got.uncertainty == pytest.approx(0.002, abs=1e-3)
    back = disruption.clock_offset(_raw(0.65, 0.002, 0.002), "node1", "node2")
    assert back is not None and back.seconds == pytest.approx(-0.65, abs=1e-3)


def test_unequal_delays_stay_within_the_stated_uncertainty():
    got = disruption.clock_offset(_raw(-0.3, 0.001, 0.041), "node2", "node1")
    assert got is not None
    assert abs(got.seconds - (-0.3)) <= got.uncertainty + 1e-6
    assert got.uncertainty == pytest.approx(0.021, abs=1e-3)


def test_clocks_in_agreement_read_as_zero():
    got = disruption.clock_offset(_raw(0.0, 0.003, 0.003), "node2", "node1")
    assert got is not None and got.seconds == pytest.approx(0.0, abs=1e-3)


def test_a_silent_direction_gives_no_reading():
    raw = _raw(0.65, 0.002, 0.002)
    raw.udp["node2->node1"] = ""
    assert disruption.clock_offset(raw, "node2", "node1") is None

"""The background ping's tally: a reply still in flight at the stop is not a loss, a gap is."""

from __future__ import annotations

from calicolab.stack.workloads import BACKGROUND_INTERVAL, IN_FLIGHT_S, ping_tally


def _output(sent: int, answered: list[int]) -> str:
    lines = ["PING 192.168.104.0 (192.168.104.0): 56 data bytes"]
    lines += [f"64 bytes from 192.168.104.0: seq={n} ttl=62 time=0.210 ms" for n in answered]
    loss = round(100 * (sent - len(answered)) / sent)
    lines += ["", "--- 192.168.104.0 ping statistics ---",
              f"{sent} packets transmitted, {len(answered)} packets received, {loss}% packet loss"]
    return "\n".join(lines) + "\n"


def test_every_reply_answered():
    assert ping_tally(_output(100, list(range(100)))) == (100, 100)


def test_the_unanswered_last_request_was_in_flight_not_lost():
    # CI: 233 sent, 232 received, the last one stopped before its reply.
    assert ping_tally(_output(233, list(range(232)))) == (232, 232)


def test_a_gap_in_the_middle_is_lost_even_with_a_tail():
    answered = [n for n in range(100) if not 40 <= n < 64][:-2]  # 24 lost, 2 in flight
    sent, got = ping_tally(_output(100, answered))
    assert (sent - got, sent) == (24, 98)


def test_a_long_silence_at_the_stop_is_an_outage_counted_whole():
    limit = round(IN_FLIGHT_S / BACKGROUND_INTERVAL)
    sent, got = ping_tally(_output(100, list(range(100 - limit - 1))))
    assert sent - got == limit + 1 and sent == 100


def test_nothing_answered_or_no_summary():
    assert ping_tally(_output(50, [])) == (50, 0)
    assert ping_tally("ping: sendto: Network unreachable\n") == (0, 0)

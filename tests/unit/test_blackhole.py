"""The blackhole's time in: the node's clock read around each iptables call, so a slow call (TCG)
widens the bracket instead of passing for the sleep. Figures from the Debian VM lane's failing
run: the rule was in from 1.000 s to 1.304 s after it was placed, and the probe saw 1.280 s."""

from __future__ import annotations

from fakes import FakeNode

from calicolab.stack import disruption


def test_the_rule_is_bracketed_by_four_clock_readings():
    node = FakeNode()
    # date, iptables -I, date, sleep 1, date, iptables -D (0.28 s under TCG), date
    node.rules[r"nsenter -t \$pid -n sh -c"] = (0, "100.000\n100.024\n101.024\n101.304\n")
    hole = disruption.blackhole(node, "res-probe-node2", "192.168.166.128", 1.0)
    inner = node.commands[0]
    # the readings are taken on either side of each rule change, in this order
    order = [inner.index(part) for part in ("date", "iptables -I", "sleep 1", "iptables -D")]
    assert order == sorted(order)
    assert inner.count("date +%s.%N") == 4
    assert round(hole.shortest, 3) == 1.0 and round(hole.longest, 3) == 1.304
    # the probe's 1.280 s lies inside the bracket; against the sleep alone it was 280 ms off
    assert hole.shortest - 0.05 <= 1.280 <= hole.longest + 0.05
    assert abs(1.280 - 1.0) > 0.05

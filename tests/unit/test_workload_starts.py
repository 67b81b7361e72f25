"""One workload per node, started on the nodes at once, each where it was asked for."""

from __future__ import annotations

import threading

import pytest
from fakes import FakeNode

from calicolab.stack import workloads
from calicolab.stack.workloads import WorkloadFailed

IP_ADDR = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\n    inet 127.0.0.1/8 scope host lo\n"
           "4: cali0@if5: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500\n"
           "    inet {ip}/32 scope global cali0\n")


def _node(name: str, ip: str, both_running: threading.Barrier, fails: bool = False) -> FakeNode:
    def run(_cmd: str):
        # Each `docker run` returns only once the other node's has started too: one after
        # another, the first would wait out the barrier and fail.
        both_running.wait()
        return (125, "docker: Error response from daemon\n") if fails else (0, "c0ffee\n")

    return FakeNode(name, rules={r"^docker run --net net1 --name ": run,
                                 r"^docker exec \S+ ip addr$": IP_ADDR.format(ip=ip)})


def test_each_node_starts_its_own_workload_at_the_same_time():
    both = threading.Barrier(2, timeout=5)
    first, second = _node("node1", "192.168.166.128", both), _node("node2", "192.168.104.0", both)
    made = workloads.start_each([first, second], ["workload-A", "workload-B"], "net1")
    assert [(w.name, w.node.name, w.ip) for w in made] == [("workload-A", "node1", "192.168.166.128"),
                                                           ("workload-B", "node2", "192.168.104.0")]
    assert [c for c in first.commands if c.startswith("docker run")] == [
        "docker run --net net1 --name workload-A -tid " + workloads.IMAGE]


def test_a_node_that_cannot_start_its_workload_is_named():
    both = threading.Barrier(2, timeout=5)
    nodes = [_node("node1", "192.168.166.128", both), _node("node2", "192.168.104.0", both, fails=True)]
    with pytest.raises(WorkloadFailed, match="workload workload-B on node2"):
        workloads.start_each(nodes, ["workload-A", "workload-B"], "net1")

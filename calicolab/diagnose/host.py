"""Checks of the host settings the guide's section 3 makes: IP forwarding, rp_filter, and the MTU
between the nodes.
"""

from __future__ import annotations

from calicolab.diagnose.diagnoses import (
    HOST_UNREACHABLE,
    IP_FORWARDING_OFF,
    MTU_MISMATCH,
    RP_FILTER_LOOSE,
    Finding,
)
from calicolab.diagnose.engine import ClusterView, failed, passed
from calicolab.stack import probes
from calicolab.stack.probes import NodeLike


def check_ip_forwarding(view: ClusterView, node: NodeLike) -> Finding:
    value = probes.sysctl(node, "net.ipv4.ip_forward")
    if value == "1":
        return passed("IP forwarding", node.name, "net.ipv4.ip_forward = 1")
    return failed("IP forwarding", node.name, f"net.ipv4.ip_forward = {value or '?'}", IP_FORWARDING_OFF.at(node.name))

def check_rp_filter(view: ClusterView, node: NodeLike) -> Finding:
    value = probes.sysctl(node, "net.ipv4.conf.all.rp_filter")
    if value in ("0", "1"):
        return passed("rp_filter", node.name, f"net.ipv4.conf.all.rp_filter = {value}")
    return failed("rp_filter", node.name, f"net.ipv4.conf.all.rp_filter = {value or '?'}",
                 RP_FILTER_LOOSE.at(node.name))

def check_mtu(view: ClusterView, node: NodeLike) -> Finding:
    for peer in view.peers(node):
        if probes.ping(node, peer.ip, size=1472):
            continue
        if probes.ping(node, peer.ip):
            return failed("MTU", node.name, f"1500-byte ping to {peer.ip} lost, small ping answered",
                         MTU_MISMATCH.at(f"{node.name} -> {peer.ip}"))
        return failed("MTU", node.name, f"no ping answer from {peer.ip}",
                     HOST_UNREACHABLE.at(f"{node.name} -> {peer.ip}"))
    return passed("MTU", node.name, "1500-byte packets pass to every peer (DF set)")

"""Issue 22, defect 5: the NAT-outgoing check's target on VirtualBox, whose NAT engine gives every
guest's eth0 the same 10.0.2.15/24 with gateway 10.0.2.2 (VirtualBox manual, "Network Address
Translation (NAT)"). A container cannot reproduce that trait, so the nodes here are FakeNodes that
answer as two CentOS 7 guests under VirtualBox do (iproute 4.11's one-line output)."""

from __future__ import annotations

import ipaddress
import re

import pytest
from fakes import FakeNode

from calicolab.stack import nat_target

POOL = ipaddress.ip_network("192.168.0.0/16")  # the guide's pool (e2e/guide.py POOL)


def vbox_addresses(private: str, nat: str = "10.0.2.15") -> str:
    return (
        "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
        f"2: eth0    inet {nat}/24 brd 10.0.2.255 scope global noprefixroute dynamic eth0\\"
        "       valid_lft 86042sec preferred_lft 86042sec\n"
        f"3: eth1    inet {private}/24 brd 192.168.223.255 scope global noprefixroute eth1\\"
        "       valid_lft forever preferred_lft forever\n"
        "4: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\\"
        "       valid_lft forever preferred_lft forever\n")


VBOX_DEFAULT_ROUTE = "default via 10.0.2.2 dev eth0 proto dhcp metric 100 \n"


def node(name: str, ip: str, addresses: str, route: str) -> FakeNode:
    global_only = "".join(ln + "\n" for ln in addresses.splitlines() if " scope global " in ln)
    return FakeNode(name, ip, rules={r"^ip -4 -o addr show$": addresses,
                                     r"^ip -4 -o addr show scope global$": global_only,
                                     r"^ip -4 route show default$": route})


@pytest.fixture
def vbox_nodes() -> tuple[FakeNode, FakeNode]:
    return (node("node1", "192.168.223.131", vbox_addresses("192.168.223.131"), VBOX_DEFAULT_ROUTE),
            node("node2", "192.168.223.130", vbox_addresses("192.168.223.130"), VBOX_DEFAULT_ROUTE))


def test_on_virtualbox_the_target_is_never_an_address_of_the_source_node(vbox_nodes):
    node1, node2 = vbox_nodes
    target = nat_target.pick(node1, node2, [POOL])
    node1_own = {m.group(1) for m in re.finditer(r"inet (\S+)/", vbox_addresses("192.168.223.131"))}
    assert target.address not in node1_own          # 10.0.2.15 is node1's own: routed to lo
    assert target.address not in (None, "172.17.0.1")
    # node2 has nothing else outside the pool: the host side of node1's NAT, counted on node1.
    assert (target.address, target.count_on) == ("10.0.2.2", "source")
    assert any("10.0.2.15" in why and "node1" in why for why in target.skipped)  # the reason is said


def test_distinct_nat_addresses_keep_the_far_node_as_target():
    """libvirt's default network and the lab: every node its own address outside the pools."""
    node1 = node("node1", "192.168.223.131", vbox_addresses("192.168.223.131", nat="10.20.0.5"),
                 "default via 10.20.0.1 dev eth0\n")
    node2 = node("node2", "192.168.223.130", vbox_addresses("192.168.223.130", nat="10.20.0.6"),
                 "default via 10.20.0.1 dev eth0\n")
    target = nat_target.pick(node1, node2, [POOL])
    assert (target.address, target.count_on, target.skipped) == ("10.20.0.6", "far", ())


def test_nothing_to_send_to_is_said_not_guessed(vbox_nodes):
    node1, node2 = vbox_nodes
    node1.prefer(r"^ip -4 route show default$", "")
    target = nat_target.pick(node1, node2, [POOL])
    assert target.address is None and "node1 has no default route" in target.describe()


def test_conntrack_rules_tell_a_masqueraded_flow_from_an_unmasqueraded_one():
    rules = nat_target.conntrack_counting_rules("192.168.104.0", "10.0.2.2", "10.0.2.15", "calicolab-nat")
    assert rules["host"].startswith("-p icmp -s 192.168.104.0 -d 10.0.2.2 -m conntrack --ctstate SNAT "
                                    "--ctrepldst 10.0.2.15 ")
    assert "! --ctstate SNAT" in rules["workload"]
    assert {r.rsplit(" ", 1)[1] for r in rules.values()} == {"calicolab-nat-host", "calicolab-nat-workload"}

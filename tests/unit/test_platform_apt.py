"""Debian installs from another suite (provision/platform.py), against a strict fake node."""

from __future__ import annotations

import pytest
from fakes import FakeNode

from calicolab.core.errors import UserError
from provision import platform

# What apt printed on the lab (bookworm) installing sid's etcd-server 3.5.30-2.
SID_POSTINST = ("Setting up etcd-server (3.5.30-2) ...\n"
                "/usr/lib/sysusers.d/etcd-server.conf:1: Unknown modifier 'u!'.\n"
                "dpkg: error processing package etcd-server (--configure):\n"
                " installed etcd-server package post-installation script subprocess returned error exit status 1\n"
                "E: Sub-process /usr/bin/dpkg returned an error code (1)\n")


def node(apt_answer, configure_answer=None) -> FakeNode:
    rules = {r"apt-get update": apt_answer}
    if configure_answer is not None:
        rules[r"^sed -i 's/\^u! /u /' "] = configure_answer
    return FakeNode(rules=rules)


def test_a_newer_suites_sysusers_line_is_read_by_bookworms_systemd() -> None:
    n = node((100, SID_POSTINST), (0, "Setting up etcd-server (3.5.30-2) ...\n"))
    platform._apt_install(n, "etcd", "sid")
    fix = next(c for c in n.commands if c.startswith("sed "))
    assert fix == ("sed -i 's/^u! /u /' /usr/lib/sysusers.d/etcd-server.conf && "
                   "DEBIAN_FRONTEND=noninteractive dpkg --configure -a")
    assert "/etc/apt/sources.list.d/calicolab-sid.list" in n.puts


def test_other_apt_failures_are_one_line_and_nothing_is_patched() -> None:
    n = node((100, "E: Unable to locate package etcd-server\n"))
    with pytest.raises(UserError, match=r"apt could not install etcd-server/sid etcd-client/sid from sid: "
                                        r"E: Unable to locate package etcd-server$"):
        platform._apt_install(n, "etcd", "sid")
    assert not any(c.startswith("sed ") for c in n.commands)


def test_a_configure_that_still_fails_says_so() -> None:
    n = node((100, SID_POSTINST), (1, "dpkg: error: dpkg frontend lock was locked\n"))
    with pytest.raises(UserError, match="apt could not install"):
        platform._apt_install(n, "etcd", "sid")


def test_the_coloured_message_as_a_lab_node_prints_it() -> None:
    from calicolab.core.remote import CommandResult

    seen = ("Setting up etcd-server (3.5.30-2) ...\n"
            "\x1b[0;1;31m/usr/lib/sysusers.d/etcd-server.conf:1: Unknown modifier 'u!'.\x1b[0m\n"
            "dpkg: error processing package etcd-server (--configure):\n")
    n = FakeNode(rules={r"^sed -i ": (0, "")})
    assert platform._configure_with_older_sysusers(n, CommandResult("node1", "apt-get", 100, seen, "")).ok
    assert " /usr/lib/sysusers.d/etcd-server.conf && " in n.commands[0]


def test_the_sysusers_message_is_found_on_stderr_after_stdout() -> None:
    # As apt runs on a node: dpkg's messages on stderr, stdout ending without a newline.
    from calicolab.core.remote import CommandResult

    failed = CommandResult("node1", "apt-get install", 100, "Setting up etcd-server (3.5.30-2) ...",
                           "/usr/lib/sysusers.d/etcd-server.conf:1: Unknown modifier 'u!'.\n"
                           "E: Sub-process /usr/bin/dpkg returned an error code (1)\n")
    n = FakeNode(rules={r"^sed -i ": (0, "")})
    assert platform._configure_with_older_sysusers(n, failed).ok
    assert n.commands[0].startswith("sed -i 's/^u! /u /' /usr/lib/sysusers.d/etcd-server.conf && ")

"""`invoke setup` installs per provider (issue 22, defect 4), decided without installing anything.

The package lists are the real ones (host_setup's groups); that each is a Debian 12 package is
checked against BOOKWORM below, not against the module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Exit

import tasks
from calicolab.core import paths, shell
from calicolab.infra import host_setup

# `apt-cache policy NAME` on Debian 12 (bookworm), 2026-12-04: each has a candidate from
# bookworm/main (ca-certificates and chromium from bookworm-security/main). `virtualbox` has
# no candidate: it is not in bookworm at all (only in unstable's contrib, or virtualbox.org's repo).
BOOKWORM = {
    "docker.io": "20.10.24+dfsg1-1+deb12u1", "debootstrap": "1.0.128+nmu2+deb12u2", "packer": "1.6.6+ds2-1",
    "vagrant": "2.3.4+dfsg-1+deb12u1", "vagrant-libvirt": "0.11.2-1", "qemu-system-x86": "1:7.2+dfsg-7",
    "qemu-utils": "1:7.2+dfsg-7", "libvirt-daemon-system": "9.0.0-4+deb12u2", "libvirt-clients": "9.0.0-4+deb12u2",
    "dnsmasq-base": "2.90-4~deb12u2", "mmdebstrap": "1.3.5-7", "fdisk": "2.38.1-5+deb12u3",
    "curl": "7.88.1-10+deb12u15", "iproute2": "6.1.0-3", "ca-certificates": "20250419~deb12u2",
    "chromium": "156.0.8078.114-1~deb12u1", "docker-registry": "2.8.2+ds1-1", "tinyproxy": "1.11.1-2.1+deb12u1",
    "ipset": "7.17-1",
}
# What the VM lane and the project's own tests use, and a VirtualBox runner must not get (the
# issue: "a Debian VirtualBox runner gets KVM/libvirt installed beside VirtualBox").
LAB_AND_TEST_TOOLS = {"chromium", "docker-registry", "tinyproxy", "ipset", "mmdebstrap", "fdisk", "vagrant-libvirt",
                      "qemu-system-x86", "qemu-utils", "libvirt-daemon-system", "libvirt-clients", "dnsmasq-base"}
# The images provisioning copies to the nodes are built on the runner: Docker and debootstrap
# (calicolab/infra/images.py builds the probe from a debootstrap minbase).
PROJECT_IMAGE_TOOLS = {"docker.io", "debootstrap"}
# Everything the old `invoke setup` installed, which `./bootstrap.sh invoke test` (.ci/run) uses.
OLD_APT_PACKAGES = {"docker.io", "vagrant", "vagrant-libvirt", "packer", "debootstrap", "curl", "iproute2",
                    "ca-certificates", "docker-registry", "tinyproxy", "chromium", "mmdebstrap", "fdisk",
                    "qemu-system-x86", "qemu-utils", "libvirt-daemon-system", "libvirt-clients", "dnsmasq-base"}


def nothing_installed(_probe: str) -> bool:
    return False


def missing(provider: str, *purposes: str) -> set[str]:
    return set(host_setup.plan(provider, purposes, have=nothing_installed).missing)


def test_every_package_is_a_debian_12_package():
    for provider in host_setup.PROVIDERS:
        for pkg in host_setup.plan(provider, ["tests"], have=nothing_installed).packages:
            assert pkg in BOOKWORM, f"{pkg} ({provider}) is not a bookworm package"


def test_virtualbox_gets_packer_vagrant_and_the_project_images_only():
    got = missing("virtualbox")
    assert not got & LAB_AND_TEST_TOOLS
    assert {"packer", "vagrant"} | PROJECT_IMAGE_TOOLS <= got
    assert "virtualbox" not in got  # never apt-get'ed: bookworm has no such package


def test_virtualbox_says_in_one_line_it_is_not_in_debians_archive():
    lines = host_setup.describe(host_setup.plan("virtualbox", have=nothing_installed))
    hand = [line for line in lines if line.startswith("by hand:")]
    assert len(hand) == 1
    assert "VirtualBox is not in Debian's main archive" in hand[0] and "virtualbox.org" in hand[0]
    # Present, nothing is said about it.
    have_vbox = host_setup.plan("virtualbox", have=lambda probe: probe == "VBoxManage")
    assert not [line for line in host_setup.describe(have_vbox) if line.startswith("by hand:")]


def test_the_lab_gets_its_tools_only():
    got = missing("docker")
    assert not got & LAB_AND_TEST_TOOLS
    assert {"vagrant", "packer"} | PROJECT_IMAGE_TOOLS <= got


def test_libvirt_gets_the_vm_lane_and_no_test_tools():
    got = missing("libvirt")
    assert {"packer", "vagrant", "vagrant-libvirt", "qemu-system-x86", "libvirt-daemon-system",
            "dnsmasq-base", "mmdebstrap", "fdisk"} | PROJECT_IMAGE_TOOLS <= got
    assert not got & {"chromium", "docker-registry", "tinyproxy"}


def test_project_images_is_its_own_named_group_on_every_provider():
    for provider in host_setup.PROVIDERS:
        lines = host_setup.describe(host_setup.plan(provider, have=nothing_installed))
        group = [line for line in lines if line.strip().startswith("project images:")]
        assert len(group) == 1 and "docker.io debootstrap" in group[0] and "over SSH" in group[0]


def test_for_tests_is_everything_invoke_test_ran_before():
    for provider in host_setup.PROVIDERS:
        assert missing(provider, "tests") >= OLD_APT_PACKAGES
    # ... and ipset, so the double's Felix rules run in a namespace instead of skipping.
    assert missing("docker", "tests") == OLD_APT_PACKAGES | {"ipset"}


def test_present_tools_are_not_installed_again():
    p = host_setup.plan("docker", have=lambda probe: probe != "debootstrap")
    assert p.missing == ("debootstrap",)
    assert p.packages[:3] == ("iproute2", "curl", "ca-certificates")


class FakeHost:
    """A Debian host with nothing installed: apt-get "installs" every package it is given."""

    def __init__(self, monkeypatch, *, root: bool = True, apt: bool = True) -> None:
        self.ran: list[list[str]] = []
        self.said: list[str] = []
        self.installed: set[str] = set()
        packages = {t.probe: t.package for g in host_setup.PURPOSE_GROUPS["tests"] + (
            host_setup.RUNNER, host_setup.PROJECT_IMAGES, host_setup.VIRTUALBOX) for t in g.tools}
        monkeypatch.setattr(host_setup, "present", lambda probe: packages.get(probe) in self.installed)
        monkeypatch.setattr(host_setup, "is_root", lambda: root)
        monkeypatch.setattr(host_setup, "apt_get", lambda: "/usr/bin/apt-get" if apt else None)
        monkeypatch.setattr(shell, "run", self.run)
        monkeypatch.setattr(host_setup, "start_engine", lambda say: self.said.append("engine"))
        monkeypatch.setattr("builtins.print", lambda *a, **_kw: self.said.append(" ".join(map(str, a))))

    def run(self, cmd, **_kwargs) -> shell.Outcome:
        self.ran.append(list(cmd))
        if cmd[:2] == ["apt-get", "install"]:
            self.installed |= {arg for arg in cmd[2:] if not arg.startswith("-")}
        return shell.Outcome(tuple(cmd), 0, "", "")

    def setup(self, **flags) -> None:
        tasks.setup.body(None, **flags)

    def apt_installed(self) -> set[str]:
        return {arg for cmd in self.ran if cmd[:2] == ["apt-get", "install"] for arg in cmd[2:]
                if not arg.startswith("-")}


@pytest.mark.parametrize("root,apt,why", [(False, True, "not root"), (True, False, "no apt-get")])
def test_cannot_install_exits_2_with_one_line_listing_the_packages(monkeypatch, root, apt, why):
    host = FakeHost(monkeypatch, root=root, apt=apt)
    with pytest.raises(Exit) as ended:
        host.setup(provider="virtualbox")
    assert ended.value.code == 2
    message = str(ended.value.message)
    assert "\n" not in message and why in message
    for pkg in ("packer", "vagrant", "docker.io", "debootstrap"):
        assert pkg in message
    assert not set(message.split()) & LAB_AND_TEST_TOOLS
    assert host.ran == []


def test_virtualbox_installs_its_packages_never_virtualbox_and_says_what_to_do(monkeypatch):
    host = FakeHost(monkeypatch)
    with pytest.raises(Exit) as ended:  # VirtualBox itself is still missing afterwards
        host.setup(provider="virtualbox")
    assert host.apt_installed() == missing("virtualbox")
    assert not host.apt_installed() & LAB_AND_TEST_TOOLS and "virtualbox" not in host.apt_installed()
    assert ended.value.code == 2 and "not in Debian's main archive" in str(ended.value.message)


def test_apt_get_is_given_exactly_the_plan(monkeypatch):
    host = FakeHost(monkeypatch)
    host.setup(provider="docker")
    assert host.apt_installed() == missing("docker")
    assert "engine" in host.said
    host.ran.clear()
    host.setup(provider="docker")  # a second run only checks
    assert host.ran == [] and "system packages: all present" in host.said


def test_dry_run_prints_the_plan_and_installs_nothing(monkeypatch):
    host = FakeHost(monkeypatch)
    host.setup(provider="libvirt", dry_run=True)
    assert host.ran == [] and "engine" not in host.said
    assert host.said[0].startswith("setup for libvirt: ") and host.said[-1] == "dry run: nothing installed"
    assert any(line.startswith("to install with apt-get: ") and "mmdebstrap" in line for line in host.said)


def test_unknown_provider_or_purpose_is_one_line(monkeypatch):
    host = FakeHost(monkeypatch)
    for flags in ({"provider": "kvm"}, {"provider": "docker", "for_": "lab"}):
        with pytest.raises(Exit) as ended:
            host.setup(**flags)
        assert ended.value.code == 2 and "\n" not in str(ended.value.message)


def _bootstrap_calls(tmp_path: Path, *args: str) -> list[str]:
    """Runs bootstrap.sh in a copy with a ready venv whose `invoke` only records its arguments."""
    root = tmp_path / "checkout"
    root.mkdir()
    shutil.copy(paths.ROOT / "bootstrap.sh", root / "bootstrap.sh")
    shutil.copy(paths.ROOT / "pyproject.toml", root / "pyproject.toml")
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    digest = subprocess.run(["sha256sum", str(root / "pyproject.toml")], capture_output=True, text=True,
                            check=True).stdout[:16]
    (root / ".venv" / f".installed-{digest}").touch()
    log = tmp_path / "invoke.log"
    (venv_bin / "invoke").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    (venv_bin / "invoke").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    res = subprocess.run(["bash", str(root / "bootstrap.sh"), *args], capture_output=True, text=True,
                         timeout=60, env=env)
    assert res.returncode == 0, res.stderr
    return log.read_text().splitlines()


@pytest.mark.parametrize("args,setup", [
    (("invoke", "test"), "setup --for tests"),
    (("invoke", "e2e"), "setup"),
    (("invoke", "e2e", "--provider", "virtualbox"), "setup --provider virtualbox"),
    (("invoke", "up", "--provider=libvirt", "--os", "debian12"), "setup --provider libvirt"),
])
def test_bootstrap_sets_up_what_the_command_needs(tmp_path, args, setup):
    assert _bootstrap_calls(tmp_path, *args) == [setup, " ".join(args[1:])]

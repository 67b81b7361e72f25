"""`invoke setup`: the system packages a run on this machine needs, per provider, and a running
Docker engine.

Tools come in named groups, each with the reason it is there, so a runner gets what its provider
uses and nothing else (a VirtualBox runner gets no KVM, libvirt or browser):

    every provider    runner basics, project images (the small images provisioning copies to
                      the nodes over SSH are built here: docker.io, debootstrap)
    docker            the lab: Vagrant's docker provider and Packer's node image
    libvirt           the VM lane: Packer, Vagrant, vagrant-libvirt, QEMU, libvirt, dnsmasq,
                      mmdebstrap and fdisk for the Debian box
    virtualbox        Packer and Vagrant; VirtualBox itself is not in Debian's main archive
    --for tests       what `invoke test` runs: the lab, the VM lane beside it and the project's
                      test tools (chromium, docker-registry, tinyproxy)

Only Debian/Ubuntu hosts are set up automatically (apt, as root); elsewhere setup says what to
install and exits 2. The machine may have no systemd (containers, CI sandboxes), so dockerd is
started directly when no service manager can start it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from calicolab.core import shell
from calicolab.core.errors import UserError

DOCKERD_LOG = "/var/log/calicolab-dockerd.log"
PROVIDERS = ("docker", "libvirt", "virtualbox")
PURPOSES = ("tests",)


@dataclass(frozen=True)
class Tool:
    probe: str    # a command on PATH, or an absolute path the package installs
    package: str  # the Debian package that brings it


@dataclass(frozen=True)
class Group:
    name: str
    reason: str
    tools: tuple[Tool, ...]

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.package for t in self.tools))


@dataclass(frozen=True)
class Manual:
    """A tool apt cannot bring: setup never installs it, it says what to do."""
    name: str
    probe: str
    how: str


RUNNER = Group("runner", "every run: the subnet check (ip -j addr), upstream downloads over HTTPS (curl)", (
    Tool("ip", "iproute2"), Tool("curl", "curl"),
    Tool("/etc/ssl/certs/ca-certificates.crt", "ca-certificates")))
PROJECT_IMAGES = Group(
    "project images", "the small images provisioning copies to the nodes over SSH on every provider "
    "(the disruption probe; busybox and the Calico double when it runs) are built on this machine", (
        Tool("dockerd", "docker.io"), Tool("debootstrap", "debootstrap")))
LAB = Group("lab", "the local lab: Vagrant's docker provider runs the node containers, Packer builds "
            "their image", (Tool("vagrant", "vagrant"), Tool("packer", "packer")))
LIBVIRT = Group(
    "libvirt", "VMs under libvirt (KVM or TCG): Packer and Vagrant with vagrant-libvirt, QEMU, libvirt "
    "and its dnsmasq; mmdebstrap and fdisk build the Debian 12 box natively", (
        Tool("packer", "packer"), Tool("vagrant", "vagrant"),
        Tool("/usr/share/vagrant-plugins/plugins.d/vagrant-libvirt.json", "vagrant-libvirt"),
        Tool("qemu-system-x86_64", "qemu-system-x86"), Tool("qemu-img", "qemu-utils"),
        Tool("libvirtd", "libvirt-daemon-system"), Tool("virsh", "libvirt-clients"),
        Tool("dnsmasq", "dnsmasq-base"), Tool("mmdebstrap", "mmdebstrap"), Tool("sfdisk", "fdisk")))
VIRTUALBOX = Group("virtualbox", "VMs under VirtualBox: Packer builds the CentOS 7 box, Vagrant runs it", (
    Tool("packer", "packer"), Tool("vagrant", "vagrant")))
TESTS = Group(
    "project tests", "the project's own tests: chromium checks the run page headless, docker-registry "
    "and tinyproxy stand in for Docker Hub and a site's proxy (the mirror lane, `invoke mirror`), ipset "
    "lets the double's Felix rules run in a network namespace", (
        Tool("chromium", "chromium"), Tool("docker-registry", "docker-registry"), Tool("tinyproxy", "tinyproxy"),
        Tool("ipset", "ipset")))
VIRTUALBOX_ITSELF = Manual(
    "VirtualBox", "VBoxManage",
    "VirtualBox is not in Debian's main archive: install VirtualBox 7.x (or 6.1.28+) from virtualbox.org's "
    "apt repository (or your release's contrib/fasttrack), then run `invoke setup --provider virtualbox` again")
PROVIDER_GROUPS: dict[str, tuple[Group, ...]] = {
    "docker": (LAB,), "libvirt": (LIBVIRT,), "virtualbox": (VIRTUALBOX,)}
PROVIDER_MANUAL: dict[str, tuple[Manual, ...]] = {"virtualbox": (VIRTUALBOX_ITSELF,)}
# `invoke test` runs the lab, the VM lane (libvirt) beside it, and the project's test tools.
PURPOSE_GROUPS: dict[str, tuple[Group, ...]] = {"tests": (LAB, LIBVIRT, TESTS)}
# Installing these starts their services; the mirror runs its own instances on free ports and a VM
# run starts libvirtd when it needs it, so the ones setup brought in are stopped again.
SERVICES = {"tinyproxy": "tinyproxy", "docker-registry": "docker-registry", "libvirt-daemon-system": "libvirtd"}


@dataclass(frozen=True)
class Plan:
    label: str
    groups: tuple[Group, ...]
    manual: tuple[Manual, ...]
    missing: tuple[str, ...]          # apt packages to install, in group order
    manual_missing: tuple[Manual, ...]

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for g in self.groups for p in g.packages))


def present(probe: str) -> bool:
    return Path(probe).exists() if probe.startswith("/") else shutil.which(probe) is not None


def apt_get() -> str | None:
    return shutil.which("apt-get")


def is_root() -> bool:
    return os.geteuid() == 0


def plan(provider: str, purposes: Iterable[str] = (), have: Callable[[str], bool] | None = None) -> Plan:
    """What setup would install for this provider (and purposes), decided without installing."""
    have = have or present
    if provider not in PROVIDERS:
        raise UserError(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")
    purposes = tuple(purposes)
    for purpose in purposes:
        if purpose not in PURPOSES:
            raise UserError(f"unknown --for {purpose!r}: use {' or '.join(PURPOSES)}, or leave it out")
    groups = (RUNNER, PROJECT_IMAGES, *PROVIDER_GROUPS[provider],
              *(g for p in purposes for g in PURPOSE_GROUPS[p]))
    groups = tuple(dict.fromkeys(groups))
    tools = {t.package: t for g in groups for t in g.tools}
    missing = tuple(pkg for pkg, tool in tools.items() if not have(tool.probe))
    manual = PROVIDER_MANUAL.get(provider, ())
    label = provider + "".join(f" --for {p}" for p in purposes)
    return Plan(label, groups, manual, missing, tuple(m for m in manual if not have(m.probe)))


def describe(p: Plan) -> list[str]:
    """The plan as lines: one per group (with its reason), then what is installed and missing."""
    lines = [f"setup for {p.label}: {', '.join(g.name for g in p.groups)}"]
    for g in p.groups:
        lacking = [pkg for pkg in g.packages if pkg in p.missing]
        state = f"missing {', '.join(lacking)}" if lacking else "present"
        lines.append(f"  {g.name}: {' '.join(g.packages)} ({state}): {g.reason}")
    for m in p.manual:
        lines.append(f"  {m.name}: {'missing' if m in p.manual_missing else 'present'} ({m.probe})")
    lines.append(f"to install with apt-get: {' '.join(p.missing)}" if p.missing
                 else "system packages: all present")
    lines += [f"by hand: {m.how}" for m in p.manual_missing]
    return lines


def install_packages(p: Plan, say: Callable[[str], None]) -> None:
    if not p.missing:
        return
    listed = " ".join(p.missing)
    if not apt_get():
        raise UserError(f"cannot install {listed}: this host has no apt-get; install them (Debian "
                        "package names) with your package manager, then run `invoke setup` again")
    if not is_root():
        raise UserError(f"cannot install {listed}: not root; run `sudo invoke setup --provider "
                        f"{p.label}` or `sudo apt-get install {listed}`")
    say(f"installing {listed} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    shell.run(["apt-get", "update", "-q"], env=env, timeout=600)
    shell.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *p.missing], env=env, timeout=1800)
    started = [SERVICES[pkg] for pkg in p.missing if pkg in SERVICES]
    if started and Path("/run/systemd/system").is_dir():
        shell.run(["systemctl", "disable", "--now", *started], check=False, timeout=60)
    tools = {t.package: t for g in p.groups for t in g.tools}
    still = [pkg for pkg in p.missing if not present(tools[pkg].probe)]
    if still:
        raise UserError(f"apt-get did not provide {' '.join(still)}: install them by hand")


def engine_running() -> bool:
    return shell.run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False, timeout=30).ok


def start_engine(say: Callable[[str], None], timeout: float = 60) -> None:
    if engine_running():
        say("docker engine: running")
        return
    if shutil.which("systemctl") and shell.run(["systemctl", "is-system-running"], check=False).stdout.strip() \
            not in ("", "offline", "unknown"):
        shell.run(["systemctl", "start", "docker"], check=False, timeout=120)
    if not engine_running():
        if os.geteuid() != 0:
            raise UserError("the Docker engine is not running and only root can start it: "
                            "run `invoke setup` as root or start dockerd")
        say(f"starting dockerd (log: {DOCKERD_LOG})")
        with open(DOCKERD_LOG, "a") as log:
            subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    deadline = time.monotonic() + timeout
    while not engine_running():
        if time.monotonic() > deadline:
            raise UserError(f"dockerd did not start within {timeout:.0f} s: see {DOCKERD_LOG}")
        time.sleep(0.5)
    say("docker engine: running")


def setup(provider: str, purposes: Iterable[str], say: Callable[[str], None], dry_run: bool = False) -> None:
    p = plan(provider, purposes)
    for line in describe(p):
        say(line)
    if dry_run:
        say("dry run: nothing installed")
        return
    install_packages(p, say)
    # Every provider builds the project images with Docker here (PROJECT_IMAGES).
    start_engine(say)
    if p.manual_missing:
        raise UserError(p.manual_missing[0].how)

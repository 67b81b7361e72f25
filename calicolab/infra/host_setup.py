"""`invoke setup`: the system packages the lab needs, and a running Docker engine.

Only Debian/Ubuntu hosts are set up automatically (apt); elsewhere the check says what is
missing. The machine may have no systemd (containers, CI sandboxes), so dockerd is started
directly when no service manager can start it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from calicolab.core import shell
from calicolab.core.errors import UserError

# vagrant-libvirt lets `vagrant validate` check the libvirt provider block here too.
# docker-registry: the local stand-in for Docker Hub (calicolab/infra/mirror.py).
# tinyproxy: the local stand-in for a site's HTTP proxy (the same mirror).
# chromium: the run page is checked in a headless browser (tests/unit/test_report_browser.py).
# The VM lane (libvirt, Debian 12 box): mmdebstrap and fdisk build the disk image natively, QEMU
# runs it (KVM or TCG), libvirt with its dnsmasq runs the nodes (calicolab/infra/vm_debian.py).
VM_PACKAGES = ("mmdebstrap", "fdisk", "qemu-system-x86", "qemu-utils", "libvirt-daemon-system", "libvirt-clients",
               "dnsmasq-base")
APT_PACKAGES = ("docker.io", "vagrant", "vagrant-libvirt", "packer", "debootstrap", "curl", "iproute2",
                "ca-certificates", "docker-registry", "tinyproxy", "chromium", *VM_PACKAGES)
TOOLS = {"dockerd": "docker.io", "vagrant": "vagrant", "packer": "packer",
         "debootstrap": "debootstrap", "curl": "curl", "ip": "iproute2", "docker-registry": "docker-registry",
         "tinyproxy": "tinyproxy", "chromium": "chromium", "mmdebstrap": "mmdebstrap", "sfdisk": "fdisk",
         "qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils", "libvirtd": "libvirt-daemon-system",
         "virsh": "libvirt-clients", "dnsmasq": "dnsmasq-base"}
DOCKERD_LOG = "/var/log/calicolab-dockerd.log"


def missing_tools() -> list[str]:
    return [pkg for tool, pkg in TOOLS.items() if not shutil.which(tool)]


def install_packages(say: Callable[[str], None]) -> None:
    missing = missing_tools()
    if not missing:
        say("system packages: present")
        return
    if not shutil.which("apt-get"):
        raise UserError(f"missing {', '.join(missing)} and this host has no apt-get: install them "
                        "with your package manager")
    if os.geteuid() != 0:
        raise UserError(f"missing {', '.join(missing)}: run `invoke setup` as root to install them")
    say(f"installing {', '.join(APT_PACKAGES)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    shell.run(["apt-get", "update", "-q"], env=env, timeout=600)
    shell.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES],
              env=env, timeout=1800)
    started = [pkg for pkg in ("tinyproxy", "docker-registry", "libvirt-daemon-system") if pkg in missing]
    if started and Path("/run/systemd/system").is_dir():
        # Installing them just started their services; the mirror runs its own instances on free
        # ports, and a VM run starts libvirtd when it needs it, so the ones this set-up brought in
        # are stopped again.
        units = {"libvirt-daemon-system": "libvirtd"}
        shell.run(["systemctl", "disable", "--now", *(units.get(p, p) for p in started)], check=False, timeout=60)
    still = missing_tools()
    if still:
        raise UserError(f"apt-get did not provide {', '.join(still)}: install them by hand")


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


def setup(say: Callable[[str], None]) -> None:
    install_packages(say)
    start_engine(say)

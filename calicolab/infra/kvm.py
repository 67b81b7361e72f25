"""Whether this host can run KVM guests, or only software emulation (TCG).

`/dev/kvm` alone is not enough: on a machine whose CPU offers no vmx/svm to us the device exists,
and a KVM guest hangs right after SeaBIOS (seen on the project's CI machine). KVM is used only
when the device opens for reading and writing and the CPU advertises virtualisation.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

KVM_DEVICE = Path("/dev/kvm")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def kvm_usable(cpuinfo: str, device_ok: bool) -> bool:
    return device_ok and bool(cpu_flags(cpuinfo) & {"vmx", "svm"})


@cache
def has_kvm() -> bool:
    try:
        text = CPUINFO.read_text()
    except OSError:
        return False
    return kvm_usable(text, KVM_DEVICE.exists() and os.access(KVM_DEVICE, os.R_OK | os.W_OK))


def emulated(provider: str, kvm: bool | None = None) -> bool:
    """Whether the run's nodes are under software emulation (TCG): longer deadlines, slower etcd
    timers. Only libvirt without usable KVM is: VirtualBox brings its own hypervisor (a host
    without a writable /dev/kvm is normal there) and the docker lab runs natively."""
    return provider == "libvirt" and not (has_kvm() if kvm is None else kvm)


def accelerator() -> str:
    """QEMU's -accel / Packer's accelerator."""
    return "kvm" if has_kvm() else "tcg"


def libvirt_driver() -> str:
    """vagrant-libvirt's driver: the domain type."""
    return "kvm" if has_kvm() else "qemu"


def cpu_model() -> str:
    # Under TCG `-cpu host` aborts ("failed to set MSR 0x10a"): a plain emulated model.
    return "host" if has_kvm() else "qemu64"

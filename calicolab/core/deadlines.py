"""How much longer every deadline is in this run.

1 on the lab, on KVM and on VirtualBox (its own hypervisor); more for VMs under software
emulation (libvirt without usable KVM: calicolab/infra/kvm.py `emulated`), where a `systemctl
restart docker` alone takes minutes. Set by `time_scale` in cluster.yaml: the lifecycle resolves `auto`
and hands the number to its own polling and remote commands and to its child processes (the e2e
tests) through one environment variable.
"""

from __future__ import annotations

import os

FACTOR_VARIABLE = "CALICOLAB_DEADLINE_FACTOR"
TCG_FACTOR = 5.0  # measured: docker's first restart on a TCG VM of a loaded 2-CPU host took over 120 s


def deadline_factor() -> float:
    try:
        return max(1.0, float(os.environ.get(FACTOR_VARIABLE, "1")))
    except ValueError:
        return 1.0


def resolve(time_scale: str, emulated: bool) -> float:
    """The factor for a run: the setting, or with `auto` TCG_FACTOR for emulated VMs (TCG only)."""
    if time_scale == "auto":
        return TCG_FACTOR if emulated else 1.0
    return max(1.0, float(time_scale))


def apply(factor: float) -> None:
    os.environ[FACTOR_VARIABLE] = f"{factor:g}"

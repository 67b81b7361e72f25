"""How much longer every deadline is in this run.

1 on the lab, on KVM and on VirtualBox (its own hypervisor); more for VMs under software
emulation (libvirt without usable KVM: calicolab/infra/kvm.py `emulated`), where a `systemctl
restart docker` alone takes minutes. Set by `time_scale` in cluster.yaml: the lifecycle resolves
`auto` and applies the factor to its own process (polling, remote commands, etcd's timers). Its
child processes read it from the run folder: the lifecycle writes it into cluster.json
(`deadline_factor`) and e2e/conftest.py applies it; a task started on its own (`invoke upgrade`)
resolves it again. Nothing goes through the environment.
"""

from __future__ import annotations

TCG_FACTOR = 5.0  # measured: docker's first restart on a TCG VM of a loaded 2-CPU host took over 120 s
EFFECTIVE_KEY = "deadline_factor"  # the factor's key in the run folder's cluster.json

_factor = 1.0  # this process's factor, set by apply()


def deadline_factor() -> float:
    return _factor


def resolve(time_scale: str, emulated: bool) -> float:
    """The factor for a run: the setting, or with `auto` TCG_FACTOR for emulated VMs (TCG only)."""
    if time_scale == "auto":
        return TCG_FACTOR if emulated else 1.0
    return max(1.0, float(time_scale))


def apply(factor: float) -> None:
    """Use this factor for every deadline of this process from now on (at least 1)."""
    global _factor
    try:
        _factor = max(1.0, float(factor))
    except (TypeError, ValueError):
        _factor = 1.0

"""Which runs are software emulation: libvirt without usable KVM only (issue 22, defect 6).

A VirtualBox host usually has no writable /dev/kvm (VirtualBox brings its own hypervisor and
does not need the KVM module), and the docker lab runs natively: neither is emulated, so neither
gets the x5 deadlines nor the slowed etcd timers (the guide's etcd.conf, docs/guide.md section 4,
sets no ETCD_HEARTBEAT_INTERVAL / ETCD_ELECTION_TIMEOUT: etcd's defaults, 100 / 1000 ms).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calicolab.core import config, deadlines
from calicolab.infra import kvm
from calicolab.runs.lifecycle import Lifecycle
from provision import etcd

VMX_CPU = "processor : 0\nflags : fpu vme vmx sse2\n"


@pytest.fixture
def no_kvm(monkeypatch, tmp_path):
    """This host as a VirtualBox runner (or a libvirt one without KVM) sees it: no /dev/kvm."""
    monkeypatch.setattr(kvm, "KVM_DEVICE", tmp_path / "no-such-kvm")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(VMX_CPU)
    monkeypatch.setattr(kvm, "CPUINFO", cpuinfo)
    kvm.has_kvm.cache_clear()
    # Lifecycle applies the run's factor to this process; the test's own is put back afterwards.
    monkeypatch.setattr(deadlines, "_factor", 1.0)
    yield
    kvm.has_kvm.cache_clear()


@pytest.mark.parametrize("provider,kvm_ok,expected", [
    ("virtualbox", False, False), ("virtualbox", True, False),
    ("docker", False, False), ("docker", True, False),
    ("libvirt", False, True), ("libvirt", True, False),
])
def test_only_libvirt_without_kvm_is_emulated(provider, kvm_ok, expected):
    assert kvm.emulated(provider, kvm_ok) is expected


def _cfg(tmp_path: Path, provider: str) -> config.ClusterConfig:
    return config.load({"provider": provider, "run_dir": str(tmp_path / "run"),
                        "reports_dir": str(tmp_path / "reports"), "time_scale": "auto"}, environ={})


def _timers(conf: str) -> dict[str, str]:
    return {k: v.strip('"') for k, _, v in (line.partition("=") for line in conf.splitlines())
            if k in ("ETCD_HEARTBEAT_INTERVAL", "ETCD_ELECTION_TIMEOUT")}


def test_virtualbox_without_dev_kvm_keeps_factor_1_and_the_guides_etcd_timers(no_kvm, tmp_path):
    assert not kvm.has_kvm()
    assert not kvm.emulated("virtualbox")
    cfg = _cfg(tmp_path, "virtualbox")
    lc = Lifecycle(cfg, say=lambda _m: None)
    assert lc.deadline_factor == 1.0
    assert deadlines.deadline_factor() == 1.0
    assert _timers(etcd.render_conf(cfg, cfg.node("node1"))) == {}


def test_libvirt_without_kvm_is_emulated_slower_deadlines_and_etcd_timers(no_kvm, tmp_path):
    assert kvm.emulated("libvirt")
    cfg = _cfg(tmp_path, "libvirt")
    lc = Lifecycle(cfg, say=lambda _m: None)
    assert lc.deadline_factor == deadlines.TCG_FACTOR > 1
    assert deadlines.deadline_factor() == deadlines.TCG_FACTOR  # this process's polling and commands
    # etcd's tuning guide: heartbeat and election scaled together (10x apart, as etcd's defaults).
    timers = _timers(etcd.render_conf(cfg, cfg.node("node1")))
    assert int(timers["ETCD_ELECTION_TIMEOUT"]) == 10 * int(timers["ETCD_HEARTBEAT_INTERVAL"]) > 1000


def test_the_lab_is_never_emulated(no_kvm, tmp_path):
    assert Lifecycle(_cfg(tmp_path, "docker"), say=lambda _m: None).deadline_factor == 1.0

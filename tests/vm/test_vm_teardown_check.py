"""The VM run's destroy checks that it left nothing: a LIBVIRT_* chain the run caused, or a
process of the run still alive, fails the stage in one line and keeps the record for the next
`invoke destroy`. The host's libvirt is replaced by recorded answers (no daemon needed)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from calicolab.core import config
from calicolab.core.errors import StageFailed
from calicolab.infra import libvirt_host

BEFORE = {"iptables": ["filter/LIBVIRT_INP"], "ip6tables": []}


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The host's own libvirt files and processes are not read: another run (a VM lane beside
    # these tests) may be on it.
    cfg = config.load({"provider": "libvirt", "vm_os": "debian12", "run_dir": str(tmp_path / "run")}, environ={})
    cfg.run_path.mkdir(parents=True)
    (tmp_path / "qemu" / "networks").mkdir(parents=True)
    monkeypatch.setattr(libvirt_host, "DEFINITIONS", tmp_path / "qemu")
    (cfg.run_path / "libvirt.json").write_text(json.dumps({"chains_before": BEFORE, "started": []}))
    now = {"chains": dict(BEFORE), "procs": []}
    monkeypatch.setattr(libvirt_host, "answers", lambda: False)
    monkeypatch.setattr(libvirt_host, "pool_path", lambda _cfg: tmp_path / "no-pool")
    monkeypatch.setattr(libvirt_host, "_kill_dnsmasq", lambda _cfg, _say: 0)
    monkeypatch.setattr(libvirt_host, "stop_daemons", lambda _cfg, _say: None)
    monkeypatch.setattr(libvirt_host, "remove_chains", lambda _keep, _say: [])  # removal "fails"
    monkeypatch.setattr(libvirt_host, "chain_snapshot", lambda: now["chains"])
    monkeypatch.setattr(libvirt_host, "_dnsmasq_pids", lambda _cfg: now["procs"])
    return cfg, now


def test_a_clean_host_passes_and_the_record_goes(host) -> None:
    cfg, _ = host
    assert libvirt_host.teardown(cfg, say=lambda _m: None) == 0
    assert not (cfg.run_path / "libvirt.json").exists()


def test_a_chain_the_run_caused_fails_destroy_and_keeps_the_record(host) -> None:
    cfg, now = host
    now["chains"] = {"iptables": ["filter/LIBVIRT_FWI", "filter/LIBVIRT_INP"], "ip6tables": []}
    with pytest.raises(StageFailed) as err:
        libvirt_host.teardown(cfg, say=lambda _m: None)
    message = str(err.value)
    assert "destroy left 1 thing(s)" in message and "iptables chain iptables filter/LIBVIRT_FWI" in message
    assert "LIBVIRT_INP" not in message  # there before the run: not the run's
    assert (cfg.run_path / "libvirt.json").exists()


def test_a_process_of_the_run_left_alive_fails_destroy(host) -> None:
    cfg, now = host
    now["procs"] = [4242]
    with pytest.raises(StageFailed, match="dnsmasq process 4242"):
        libvirt_host.teardown(cfg, say=lambda _m: None)


def test_another_runs_objects_are_not_this_runs(host, monkeypatch) -> None:
    """`calicolab-` starts the names of a lane's objects too (calicolab-libvirt-debian12-node1):
    only this run's exact names count, and only they are removed."""
    cfg, _ = host
    definitions = libvirt_host.DEFINITIONS
    for name in ("calicolab-libvirt-debian12-node1", "calicolab-node1"):
        (definitions / f"{name}.xml").write_text("<domain/>")
    (definitions / "networks" / "calicolab-libvirt-debian12-mgmt.xml").write_text("<network/>")
    listed = "calicolab-libvirt-debian12-node1\ncalicolab-node2\ncalicolab-node10\n"
    monkeypatch.setattr(libvirt_host, "virsh", lambda *args: SimpleNamespace(ok=True, stdout=listed, stderr=""))
    assert libvirt_host.domains(cfg) == ["calicolab-node2"]
    left = [x for x in libvirt_host.leftovers(cfg) if x.startswith("libvirt definition")]
    assert left == [f"libvirt definition {definitions / 'calicolab-node1.xml'}"]

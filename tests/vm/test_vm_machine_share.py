"""The VM lane's guests weigh as little as its niceness says (calicolab/infra/libvirt_host.py
`_machine_share`): libvirt's cgroup competes with Docker's group of every lab node, so nice alone
never lowered the guests' share. A fake cgroup v1 folder stands in for /sys/fs/cgroup/cpu."""

from __future__ import annotations

from calicolab.infra import libvirt_host


def _cgroup(tmp_path, monkeypatch, nice: int):
    (tmp_path / "cpu.shares").write_text("1024\n")
    machine = tmp_path / "machine"
    monkeypatch.setattr(libvirt_host, "MACHINE_CPU", machine)
    monkeypatch.setattr(libvirt_host.os, "nice", lambda inc: nice if inc == 0 else nice + inc)
    return machine


def test_a_niced_run_gives_the_guests_its_weight_and_teardown_puts_it_back(tmp_path, monkeypatch):
    machine = _cgroup(tmp_path, monkeypatch, nice=10)
    machine.mkdir()
    (machine / "cpu.shares").write_text("1024\n")
    record: dict = {}
    said: list[str] = []
    libvirt_host._machine_share(record, said.append)
    # nice 10 -> 110, CFS's weight table (kernel/sched/core.c sched_prio_to_weight), against 1024 for nice 0
    assert (machine / "cpu.shares").read_text().strip() == "110"
    assert record == {"machine_shares": 1024} and "nice 10" in said[0]
    libvirt_host._machine_share(record, said.append)  # a second `up` of the run keeps the first value
    assert record == {"machine_shares": 1024}
    libvirt_host._restore_machine_share(record)
    assert (machine / "cpu.shares").read_text().strip() == "1024"


def test_the_group_libvirt_would_make_is_made_first(tmp_path, monkeypatch):
    machine = _cgroup(tmp_path, monkeypatch, nice=10)
    real_mkdir = type(machine).mkdir

    def mkdir(path, *a, **kw):  # the kernel fills a new cgroup folder with its files
        real_mkdir(path, *a, **kw)
        if path == machine and not (machine / "cpu.shares").exists():
            (machine / "cpu.shares").write_text("1024\n")
    monkeypatch.setattr(type(machine), "mkdir", mkdir)
    record: dict = {}
    libvirt_host._machine_share(record, lambda _: None)
    assert (machine / "cpu.shares").read_text().strip() == "110"


def test_a_run_at_normal_priority_or_without_cgroup_v1_changes_nothing(tmp_path, monkeypatch):
    machine = _cgroup(tmp_path, monkeypatch, nice=0)
    record: dict = {}
    libvirt_host._machine_share(record, lambda _: None)
    assert record == {} and not machine.exists()
    (tmp_path / "cpu.shares").unlink()  # no cpu controller of cgroup v1 here
    monkeypatch.setattr(libvirt_host.os, "nice", lambda inc: 10)
    libvirt_host._machine_share(record, lambda _: None)
    assert record == {} and not machine.exists()

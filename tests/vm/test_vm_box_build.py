"""invoke box for the VM providers: the plan, the skip logic, the tool check (no Packer run)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from calicolab.core import config, shell
from calicolab.core.errors import UserError
from calicolab.core.paths import ROOT
from calicolab.infra import images, vm_box


@pytest.fixture
def cfg():
    return config.load({"provider": "virtualbox", "etcd": "3.3.11", "docker": "20.10.21"}, environ={})


def test_plan_for_each_provider(cfg, tmp_path):
    for provider, source in (("virtualbox", "virtualbox-iso.centos7"), ("libvirt", "qemu.centos7")):
        p = vm_box.plan(cfg, provider, {}, box_dir=tmp_path)
        assert p.box_file == tmp_path / f"centos7-{provider}.box"
        assert p.stamp == tmp_path / f"centos7-{provider}.box.inputs"
        assert f"-only={source}" in p.build_cmd and p.build_cmd[-1] == str(vm_box.TEMPLATE_DIR)
        assert f"box_dir={tmp_path}" in p.build_cmd
        assert p.add_cmd == ("vagrant", "box", "add", "--force", "--name", "calicolab/centos7",
                             "--provider", provider, str(p.box_file))


def test_inputs_hash_follows_provider_variables_and_template(cfg, tmp_path, monkeypatch):
    a = vm_box.plan(cfg, "virtualbox", {}, box_dir=tmp_path).inputs
    assert a == vm_box.plan(cfg, "virtualbox", {}, box_dir=tmp_path / "elsewhere").inputs
    assert a != vm_box.plan(cfg, "libvirt", {}, box_dir=tmp_path).inputs
    assert a != vm_box.plan(cfg, "virtualbox", {"vbox_nat_localhost_reachable": "true"}, box_dir=tmp_path).inputs
    # A changed kickstart (or any template file) is a new box.
    root = tmp_path / "root"
    shutil.copytree(vm_box.TEMPLATE_DIR, root / "packer" / "centos7")
    monkeypatch.setattr(images, "ROOT", root)
    monkeypatch.setattr(vm_box, "TEMPLATE_DIR", root / "packer" / "centos7")
    before = vm_box.plan(cfg, "virtualbox", {}, box_dir=tmp_path).inputs
    ks = root / "packer" / "centos7" / "http" / "ks.cfg"
    ks.write_text(ks.read_text() + "# changed\n")
    assert vm_box.plan(cfg, "virtualbox", {}, box_dir=tmp_path).inputs != before


def test_check_tools_names_every_missing_tool_on_one_line():
    with pytest.raises(UserError) as err:
        vm_box.check_tools("libvirt", which=lambda tool: None if tool in ("virsh", "packer") else "/bin/x")
    msg = str(err.value)
    assert msg.startswith("cannot build the libvirt box: packer, virsh not installed")
    assert "\n" not in msg
    vm_box.check_tools("virtualbox", which=lambda tool: f"/usr/bin/{tool}")
    with pytest.raises(UserError, match="no CentOS box for provider 'docker'"):
        vm_box.check_tools("docker")


def test_version_parsing():
    assert vm_box.packer_version("Packer v1.6.6\n") == (1, 6, 6)
    assert vm_box.packer_version("Packer v1.11.2\n\nYour version of Packer is out of date!") == (1, 11, 2)
    assert vm_box.vbox_is_7_or_newer("7.0.14r161095") and not vm_box.vbox_is_7_or_newer("6.1.50r161033")


def test_box_list_parsing():
    listing = ("1700000000,,box-name,calicolab/centos7\n1700000000,,box-provider,libvirt\n"
               "1700000000,,box-version,0\n1700000000,,box-name,other/box\n"
               "1700000000,,box-provider,virtualbox\n")
    assert vm_box._listed(listing, "calicolab/centos7", "libvirt")
    assert not vm_box._listed(listing, "calicolab/centos7", "virtualbox")


class FakeHost:
    """Records the commands build_box runs; packer 'builds' by writing the box file."""

    def __init__(self, box_file: Path) -> None:
        self.box_file = box_file
        self.ran: list[tuple[str, ...]] = []
        self.added: set[tuple[str, str]] = set()

    def run(self, cmd, **kwargs):  # noqa: ARG002
        cmd = tuple(cmd)
        self.ran.append(cmd)
        out = ""
        if cmd[:3] == ("vagrant", "box", "add"):
            self.added.add((cmd[5], cmd[7]))
        elif cmd[:3] == ("vagrant", "box", "list"):
            out = "".join(f"1,,box-name,{n}\n1,,box-provider,{p}\n" for n, p in sorted(self.added))
        elif cmd == ("packer", "version"):
            out = "Packer v1.6.6\n"
        elif cmd == ("VBoxManage", "--version"):
            out = "7.0.14r161095\n"
        return shell.Outcome(cmd, 0, out, "")

    def run_logged(self, cmd, log_path, **kwargs):  # noqa: ARG002
        self.ran.append(tuple(cmd))
        self.packer_env = kwargs.get("env") or {}
        self.packer_cwd = kwargs.get("cwd")
        self.log = Path(log_path)
        self.box_file.write_text("box")

    def kinds(self) -> list[str]:
        return [" ".join(c[:3]) for c in self.ran]


def test_build_box_builds_adds_then_skips(cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("CALICOLAB_BOX_CACHE", str(tmp_path))
    host = FakeHost(tmp_path / "centos7-virtualbox.box")
    monkeypatch.setattr(shell, "which_or_none", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(shell, "run", host.run)
    monkeypatch.setattr(shell, "run_logged", host.run_logged)
    said: list[str] = []

    vm_box.build_box(cfg, "virtualbox", said.append)
    build = next(c for c in host.ran if c[:2] == ("packer", "build"))
    assert "-only=virtualbox-iso.centos7" in build and "vbox_nat_localhost_reachable=true" in build
    assert "packer init" not in host.kinds()         # Packer 1.6.6 has the builders built in
    assert host.kinds().index("packer build -color=false") < host.kinds().index("vagrant box add")
    assert (tmp_path / "centos7-virtualbox.box.inputs").exists()
    # The ISO cache must not land in the hashed template folder.
    assert not host.packer_env["PACKER_CACHE_DIR"].startswith(str(vm_box.TEMPLATE_DIR))
    assert not host.packer_cwd.startswith(str(vm_box.TEMPLATE_DIR))

    host.ran.clear()
    vm_box.build_box(cfg, "virtualbox", said.append)
    assert "packer build -color=false" not in host.kinds() and "vagrant box add" not in host.kinds()
    assert "up to date" in said[-1]

    host.added.clear()                              # someone ran `vagrant box remove`
    host.ran.clear()
    vm_box.build_box(cfg, "virtualbox", said.append)
    assert "packer build -color=false" not in host.kinds() and "vagrant box add" in host.kinds()


def test_box_and_iso_cached_where_calicolab_box_cache_says(cfg, tmp_path, monkeypatch):
    """Issue 22 defect 10: the CentOS box, Packer's ISO cache and the build log followed the
    checkout (.cache/), so a fresh CI clone rebuilt the box and downloaded the ~1 GB ISO each night;
    CALICOLAB_BOX_CACHE (set by the nightly workflow and .gitlab-ci.yml) is honoured as for the
    Debian box."""
    shared = tmp_path / "shared-boxes"
    monkeypatch.setenv("CALICOLAB_BOX_CACHE", str(shared))
    for provider in ("virtualbox", "libvirt"):
        p = vm_box.plan(cfg, provider, {})
        assert p.box_file == shared / f"centos7-{provider}.box"
        assert f"box_dir={shared}" in p.build_cmd and f"build_dir={shared / 'build'}" in p.build_cmd
    host = FakeHost(shared / "centos7-libvirt.box")
    monkeypatch.setattr(shell, "which_or_none", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(shell, "run", host.run)
    monkeypatch.setattr(shell, "run_logged", host.run_logged)
    assert vm_box.build_box(cfg, "libvirt", lambda _m: None) == shared / "centos7-libvirt.box"
    assert Path(host.packer_env["PACKER_CACHE_DIR"]).parent == shared   # where Packer keeps the ISO
    assert host.log.parent == shared
    assert not Path(host.packer_env["PACKER_CACHE_DIR"]).is_relative_to(ROOT)


def test_box_cache_outside_the_checkout_without_the_setting(cfg, monkeypatch, tmp_path):
    monkeypatch.delenv("CALICOLAB_BOX_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    box = vm_box.plan(cfg, "virtualbox", {}).box_file
    assert not box.is_relative_to(ROOT)
    # The Debian box's documented places (docs/vm-runners.md): root's /var/cache, else XDG's.
    want = Path("/var/cache/calicolab/boxes") if os.geteuid() == 0 else tmp_path / "xdg" / "calicolab" / "boxes"
    assert box.parent == want

"""`vagrant validate` of the project's Vagrantfile for the VM providers.

Vagrant validates a provider block only when that provider is the one in use, and it first
asks the provider whether it is usable. So each provider is selected with
VAGRANT_DEFAULT_PROVIDER:
- libvirt: the vagrant-libvirt plugin must be installed (Debian: apt-get install vagrant-libvirt).
- virtualbox: when VirtualBox is not installed, a stub VBoxManage that answers only
  `--version` lets Vagrant's own VirtualBox config validator run. It proves the Vagrantfile's
  virtualbox settings are valid for Vagrant, not that VirtualBox works here.
The Vagrantfile is validated from a copy in a temporary folder, so Vagrant writes nothing
into the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from calicolab.core import config
from calicolab.infra import libvirt_host

ROOT = Path(__file__).resolve().parents[2]
VBOX_STUB = "#!/bin/sh\n# Test stub: only the version probe Vagrant uses to detect VirtualBox.\n" \
            "[ \"$1\" = --version ] && echo 7.0.14r161095 && exit 0\nexit 1\n"


def vagrant_env(tmp_path: Path, provider: str, debian: bool = False) -> dict[str, str]:
    if not shutil.which("vagrant"):
        pytest.skip("vagrant is not on PATH (apt-get install vagrant)")
    (tmp_path / "project").mkdir()
    versions = {} if debian else {"etcd": "3.3.11", "docker": "20.10.21"}
    cfg = config.load({"provider": provider, **versions, "vm_os": "debian12" if debian else "centos7",
                       "run_dir": str(tmp_path / "run")}, environ={})
    # What the lifecycle adds for libvirt: names and, under TCG, the qemu driver and CPU model.
    extra = libvirt_host.vagrant_settings(cfg, "qemu", "qemu64") if debian else {}
    env = dict(os.environ, CALICOLAB_CONFIG=str(config.write_effective(cfg, extra)),
               VAGRANT_DEFAULT_PROVIDER=provider, VAGRANT_CWD=str(tmp_path / "project"),
               VAGRANT_DOTFILE_PATH=str(tmp_path / "run" / ".vagrant"), VAGRANT_CHECKPOINT_DISABLE="1")
    if provider == "libvirt":
        plugins = subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True, env=env,
                                 timeout=300)
        if "vagrant-libvirt" not in plugins.stdout:
            pytest.skip("the vagrant-libvirt plugin is not installed (apt-get install vagrant-libvirt)")
    if provider == "virtualbox" and not shutil.which("VBoxManage"):
        stub_dir = tmp_path / "stub-bin"
        stub_dir.mkdir()
        (stub_dir / "VBoxManage").write_text(VBOX_STUB)
        (stub_dir / "VBoxManage").chmod(0o755)
        env["PATH"] = f"{stub_dir}{os.pathsep}{env['PATH']}"
    return env


def validate(tmp_path: Path, provider: str, vagrantfile: str, debian: bool = False) -> subprocess.CompletedProcess:
    env = vagrant_env(tmp_path, provider, debian)
    (tmp_path / "project" / "Vagrantfile").write_text(vagrantfile)
    return subprocess.run(["vagrant", "validate"], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)


@pytest.mark.parametrize("provider", ["virtualbox", "libvirt"])
def test_vagrantfile_validates(tmp_path, provider):
    res = validate(tmp_path, provider, (ROOT / "Vagrantfile").read_text())
    assert res.returncode == 0, res.stdout + res.stderr
    assert "validated successfully" in res.stdout


def test_the_debian_box_under_tcg_validates(tmp_path):
    res = validate(tmp_path, "libvirt", (ROOT / "Vagrantfile").read_text(), debian=True)
    assert res.returncode == 0, res.stdout + res.stderr
    # Under TCG a CPU model is required (cpu_mode custom); an empty one is refused by the plugin.
    text = (ROOT / "Vagrantfile").read_text()
    broken = text.replace('lv.cpu_model = lvs["cpu_model"] || "qemu64"',
                          'lv.cpu_model = ""\n          lv.cpu_features = [{name: "x", policy: "require"}]')
    assert broken != text
    (tmp_path / "broken").mkdir()
    res = validate(tmp_path / "broken", "libvirt", broken, debian=True)
    assert res.returncode != 0, res.stdout


@pytest.mark.parametrize(("provider", "anchor", "bogus"), [
    ("virtualbox", "vb.linked_clone = true", "vb.no_such_setting = 1"),
    ("libvirt", "lv.uri = \"qemu:///system\"", "lv.no_such_setting = 1"),
])
def test_a_broken_provider_block_is_caught(tmp_path, provider, anchor, bogus):
    text = (ROOT / "Vagrantfile").read_text()
    if anchor not in text:
        pytest.skip(f"the Vagrantfile changed: `{anchor}` is gone; update this test")
    res = validate(tmp_path, provider, text.replace(anchor, f"{anchor}\n        {bogus}", 1))
    assert res.returncode != 0
    assert "no_such_setting" in res.stdout + res.stderr

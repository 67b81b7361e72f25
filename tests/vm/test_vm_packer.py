"""The CentOS 7 Packer template: valid for the Packer on this machine, and a broken copy is not."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from calicolab.infra import vm_box

TEMPLATE = Path(__file__).resolve().parents[2] / "packer" / "centos7"
ISO_SHA256 = "07b94e6b1a0b0260b94c83d6bb76b26bf7a310dc78d7a9c7432809fb9bc6194a"


def packer(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    if not shutil.which("packer"):
        pytest.skip("packer is not on PATH (apt-get install packer)")
    return subprocess.run(["packer", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def packer_version() -> tuple[int, int, int]:
    return vm_box.packer_version(packer("version").stdout) or (0, 0, 0)


def copy_template(tmp_path: Path) -> Path:
    target = tmp_path / "centos7"
    shutil.copytree(TEMPLATE, target)
    return target


def test_packer_validate_passes():
    if packer_version() >= (1, 7, 0):
        # Modern Packer needs the plugins first (the documented step).
        init = packer("init", str(TEMPLATE / "modern" / "plugins.pkr.hcl"))
        assert init.returncode == 0, init.stdout + init.stderr
    res = packer("validate", str(TEMPLATE))
    assert res.returncode == 0, res.stdout + res.stderr


def test_packer_validate_with_virtualbox7_variable():
    res = packer("validate", "-var", "vbox_nat_localhost_reachable=true", str(TEMPLATE))
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("breakage", [
    ('hard_drive_interface = "sata"', 'hard_drive_interface = "sata"\n  no_such_option = 1'),
    ('disk_interface   = "virtio"', 'disk_interface   = "floppy"'),
    ("build {", "build {{"),
], ids=["unknown-attribute", "invalid-value", "syntax-error"])
def test_packer_validate_catches_a_broken_copy(tmp_path, breakage):
    old, new = breakage
    copy = copy_template(tmp_path)
    hcl = copy / "centos7.pkr.hcl"
    assert old in hcl.read_text()
    hcl.write_text(hcl.read_text().replace(old, new, 1))
    assert packer("validate", str(copy)).returncode != 0


@pytest.mark.parametrize("provider", sorted(vm_box.SOURCES))
def test_only_selects_exactly_the_providers_source(tmp_path, provider):
    """`invoke box` passes -only=<source>: Packer must know the name and build nothing else.
    A missing local ISO stops the build before anything is created."""
    source = vm_box.SOURCES[provider]
    res = packer("build", "-color=false", f"-only={source}",
                 "-var", 'iso_urls=["file:///nonexistent/CentOS-7.iso"]',
                 "-var", f"build_dir={tmp_path / 'build'}", "-var", f"box_dir={tmp_path / 'boxes'}",
                 str(TEMPLATE), cwd=tmp_path, env={**os.environ, "PACKER_CACHE_DIR": str(tmp_path / "cache")})
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert f"{source}" in out
    others = [s for s in vm_box.SOURCES.values() if s != source]
    assert not any(f"==> {other}" in out for other in others), out
    assert not (tmp_path / "boxes").exists()


def test_required_plugins_only_in_the_modern_file():
    main = "".join(p.read_text() for p in TEMPLATE.glob("*.pkr.hcl"))
    modern = (TEMPLATE / "modern" / "plugins.pkr.hcl").read_text()
    assert not re.search(r"^\s*required_plugins\s*{", main, re.M)
    assert re.search(r"^\s*required_plugins\s*{", modern, re.M)
    for plugin in ("hashicorp/virtualbox", "hashicorp/qemu", "hashicorp/vagrant"):
        assert f"github.com/{plugin}" in modern


def test_iso_pinned_by_sha256_and_one_box_per_provider():
    text = (TEMPLATE / "variables.pkr.hcl").read_text()
    assert f'"sha256:{ISO_SHA256}"' in text
    urls = re.findall(r'"(https://[^"]+\.iso)"', text)
    assert urls and all(u.endswith("/7.9.2009/isos/x86_64/CentOS-7-x86_64-Minimal-2009.iso") for u in urls)
    hcl = (TEMPLATE / "centos7.pkr.hcl").read_text()
    assert 'post-processor "vagrant"' in hcl and "{{ .Provider }}" in hcl


def test_no_guest_additions_step_or_upload():
    """Nothing uses VirtualBox's guest additions (the Vagrantfile turns synced folders off), so
    the box build neither uploads their ISO nor builds them (`modinfo vboxguest` failed builds)."""
    assert re.search(r'^\s*config\.vm\.synced_folder\s+"\.",\s*"/vagrant",\s*disabled:\s*true',
                     (TEMPLATE.parents[1] / "Vagrantfile").read_text(), re.M)
    hcl = (TEMPLATE / "centos7.pkr.hcl").read_text()
    source = hcl.split('source "virtualbox-iso" "centos7" {')[1].split("\n}")[0]
    # Packer's virtualbox-iso default is "upload": the ISO is skipped only when it says "disable".
    assert re.search(r'^\s*guest_additions_mode\s*=\s*"disable"', source, re.M)
    assert "guest_additions_path" not in source and "guest_additions_url" not in source
    for script in TEMPLATE.glob("scripts/*.sh"):
        text = script.read_text()
        assert not re.search(r"vboxguest|VBoxLinuxAdditions|VBoxGuestAdditions", text), script.name


def test_vault_repos_are_fixed_before_anything_else():
    hcl = (TEMPLATE / "centos7.pkr.hcl").read_text()
    scripts = re.findall(r"scripts/([\w.-]+\.sh)", hcl)
    assert scripts[0] == "10-vault-repos.sh"
    for name in scripts:
        assert (TEMPLATE / "scripts" / name).exists()


@pytest.mark.parametrize("script", sorted(p.name for p in (TEMPLATE / "scripts").glob("*.sh")))
def test_provisioning_scripts_parse(script):
    res = subprocess.run(["bash", "-n", str(TEMPLATE / "scripts" / script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


PATH_ROOT_REF = re.compile(r'\$\{path\.root\}/([^"]+)"')


@pytest.mark.parametrize("root", sorted({p.parent for p in Path("packer").glob("*/*.pkr.hcl")}), ids=str)
def test_every_file_a_template_names_is_tracked(root):
    """A fresh clone builds the box: a file the template reads but git ignores (say, a
    `Vagrantfile.box` under a `*.box` rule) works on the author's machine and nowhere else."""
    named = sorted({n for t in root.glob("*.pkr.hcl") for n in PATH_ROOT_REF.findall(t.read_text())})
    assert named, f"{root} names no file under ${{path.root}}: the pattern no longer matches the template"
    tracked = set(subprocess.run(["git", "ls-files", str(root)], capture_output=True, text=True,
                                 check=True).stdout.split())
    missing = [n for n in named if str(root / n) not in tracked and not any(t.startswith(f"{root / n}/")
                                                                         for t in tracked)]
    assert not missing, (f"{root} reads {missing}, which git does not track "
                         f"(expected every one in `git ls-files {root}`; likely an ignore rule: git check-ignore -v)")

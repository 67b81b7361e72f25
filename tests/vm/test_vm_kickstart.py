"""The CentOS 7 kickstart: valid for RHEL7 by pykickstart, and says what the box needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from provision import centos

KS = Path(__file__).resolve().parents[2] / "packer" / "centos7" / "http" / "ks.cfg"
VAULT_OS = "http://vault.centos.org/7.9.2009/os/x86_64/"

pykickstart = pytest.importorskip("pykickstart", reason="pykickstart (PyPI) is not installed")
from pykickstart import constants  # noqa: E402
from pykickstart.parser import KickstartParser  # noqa: E402
from pykickstart.version import RHEL7, makeVersion  # noqa: E402


def ksvalidator() -> str:
    beside = Path(sys.executable).with_name("ksvalidator")
    found = str(beside) if beside.exists() else shutil.which("ksvalidator")
    if not found:
        pytest.skip("ksvalidator (from pykickstart) is not on PATH")
    return found


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([ksvalidator(), "-v", "RHEL7", str(path)], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def ks():
    handler = makeVersion(RHEL7)
    KickstartParser(handler).readKickstart(str(KS))
    return handler


def post_script(ks) -> str:
    scripts = [s for s in ks.scripts if s.type == constants.KS_SCRIPT_POST]
    assert len(scripts) == 1, "one %post section expected"
    return scripts[0].script


def test_ksvalidator_rhel7_accepts_the_kickstart():
    res = validate(KS)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("breakage", [
    ("bootloader --location=mbr", "bootloaderz --location=mbr"),       # unknown directive
    ("part / --fstype=\"xfs\" --size=1 --grow", "part / --fstype=\"xfs\" --sizee=1 --grow"),  # bad option
    ("%end\n\n%post", "\n%post"),                                      # unterminated %packages
], ids=["unknown-directive", "unknown-option", "missing-end"])
def test_ksvalidator_catches_a_broken_copy(tmp_path, breakage):
    old, new = breakage
    text = KS.read_text()
    assert old in text
    broken = tmp_path / "ks.cfg"
    broken.write_text(text.replace(old, new, 1))
    assert validate(broken).returncode != 0


def test_text_install_from_the_vault(ks):
    assert ks.displaymode.displayMode == constants.DISPLAY_MODE_TEXT
    assert ks.url.url == VAULT_OS
    assert all(r.baseurl.startswith("http://vault.centos.org/7.9.2009/") for r in ks.repo.repoList)
    assert not [ln for ln in KS.read_text().splitlines() if ln.strip().startswith("mirrorlist=")]


def test_plain_partitions_without_lvm(ks):
    assert not ks.autopart.autopart
    assert not ks.logvol.lvList and not ks.volgroup.vgList
    assert "/" in {p.mountpoint for p in ks.partition.partitions}


def test_classic_interface_names_and_dhcp_on_eth0(ks):
    assert {"net.ifnames=0", "biosdevname=0"} <= set(ks.bootloader.appendLine.split())
    (net,) = ks.network.network
    assert (net.device, net.bootProto, net.onboot) == ("eth0", "dhcp", True)


def test_vagrant_user_passwordless_sudo_and_sshd(ks):
    assert [u.name for u in ks.user.userList] == ["vagrant"]
    assert "sshd" in ks.services.enabled
    assert ks.rootpw.lock
    assert "vagrant ALL=(ALL) NOPASSWD: ALL" in post_script(ks)


def test_minimal_packages(ks):
    assert ks.packages.environment == "minimal"
    assert {"openssh-server", "sudo", "tar", "curl"} <= set(ks.packages.packageList)


def test_vagrant_insecure_key_is_the_one_vagrant_ships(ks):
    keys = sorted(Path("/usr/share/rubygems-integration/all/gems").glob("vagrant-*/keys/vagrant.pub"))
    keys += sorted(Path("/opt/vagrant/embedded/gems").glob("gems/vagrant-*/keys/vagrant.pub"))
    if not keys:
        pytest.skip("Vagrant is not installed (no keys/vagrant.pub to compare with)")
    shipped = {line.split()[1] for line in keys[-1].read_text().splitlines() if line.startswith("ssh-")}
    assert any(key in post_script(ks) for key in shipped)


def test_post_writes_the_same_vault_repo_as_provisioning(ks):
    script = post_script(ks)
    body = script.split("<<'REPO'\n", 1)[1].split("\nREPO\n", 1)[0] + "\n"
    assert body == centos.render_vault_repo()
    # ... and it comes first: no %post command may call yum before the repo file is fixed.
    commands = [ln for ln in script.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    first_yum = next((i for i, ln in enumerate(commands) if ln.split()[0] == "yum"), len(commands))
    assert commands.index("cat > /etc/yum.repos.d/CentOS-Base.repo <<'REPO'") < first_yum

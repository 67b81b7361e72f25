"""The Debian box's root filesystem hook (packer/debian12/scripts/rootfs-hook.sh) on a real
Debian bookworm root with Debian's own sudo, in a container of this host's Docker: it needs no
folder of saved images any more, leaves no /opt/calicolab/images, and sudo's PATH afterwards is
CentOS 7.9's (sudo-1.8.23's /etc/sudoers: /sbin:/bin:/usr/sbin:/usr/bin), not Debian's, which
has /usr/local/sbin and /usr/local/bin. The box used to carry the project's images (saved and
preloaded into its Docker); a CentOS 7 VM has neither, and provisioning now copies them."""

from __future__ import annotations

import subprocess

import pytest

from calicolab.core import config, shell
from calicolab.infra import images, vm_debian

CENTOS_PATH = "/sbin:/bin:/usr/sbin:/usr/bin"
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # sudo 1.9.13p3 bookworm
# What the hook touches besides sudo: the packages the box's rootfs has for them (vm_debian.PACKAGES).
PACKAGES = "sudo openssh-server systemd-sysv ifupdown"


@pytest.fixture
def debian_root(tmp_path, docker_engine) -> str:
    """bookworm minbase (the project's base image) with the packages the hook edits."""
    base = images.ImageNames.for_config(config.load({}, environ={})).base
    if not shell.run(["docker", "image", "inspect", base], check=False).ok:
        pytest.skip(f"needs the project's base image {base}: run `invoke box`")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {base}\nRUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
        f"--no-install-recommends {PACKAGES}\n")
    tag = f"{base.split('/')[0]}/box-hook-test:bookworm"
    built = shell.run(["docker", "build", "-q", "-t", tag, str(ctx)], check=False, timeout=600)
    if not built.ok:
        pytest.skip(f"could not install {PACKAGES} from Debian's archive: {built.stderr.strip()[-200:]}")
    return tag


def _in_root(image: str, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    hook_env = vm_debian.rootfs_hook_env({})
    mounts = ["-v", f"{vm_debian.TEMPLATE_DIR / 'scripts'}:/scripts:ro",
              "-v", f"{hook_env['CENTOS_SUDOERS']}:/centos-sudoers.sh:ro",
              "-v", f"{hook_env['CENTOS_UNITS']}:/centos-units.sh:ro",
              "-v", f"{hook_env['VAGRANT_PUBKEY']}:/vagrant.pub:ro"]
    envs = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    return subprocess.run(["docker", "run", "--rm", *mounts, *envs, "--entrypoint", "sh", image, "-c", script],
                          capture_output=True, text=True, timeout=300)


def test_the_hook_brings_no_image_and_sets_centos_7s_sudo_path(debian_root):
    before = _in_root(debian_root, "sudo -n sh -c 'echo $PATH'", {})
    assert before.stdout.strip() == DEBIAN_PATH, f"expected Debian's own secure_path first: {before}"

    # Exactly what vm_debian gives the hook, at paths inside the container; no IMAGES_DIR.
    env = {"VAGRANT_PUBKEY": "/vagrant.pub", "FIRSTBOOT": "/scripts/firstboot.sh",
           "CENTOS_SUDOERS": "/centos-sudoers.sh", "CENTOS_UNITS": "/centos-units.sh"}
    assert set(env) == set(vm_debian.rootfs_hook_env({})), "the hook's environment changed: update this test"
    # Debian's docker.io and etcd-server ship SysV scripts (this image has neither package):
    # stand-ins that the hook must remove, as CentOS 7's packages have none.
    script = ("touch /etc/init.d/docker /etc/init.d/etcd && ln -s ../init.d/docker /etc/rc2.d/S01docker && "
              "sh -eu /scripts/rootfs-hook.sh / && "
              "echo PATH=$(sudo -n sh -c 'echo $PATH') && "
              "echo VISUDO=$(visudo -c >/dev/null 2>&1 && echo ok) && "
              "echo OPT=$(test -e /opt/calicolab/images && echo present || echo absent) && "
              "echo LOCAL=$(test -x /usr/local/sbin/calicolab-firstboot && "
              "sudo -n sh -c 'command -v calicolab-firstboot' >/dev/null; echo $?) && "
              "echo SYSV=$(ls /etc/init.d/docker /etc/init.d/etcd /etc/rc2.d/S01docker 2>/dev/null | wc -l) && "
              "echo KEYGEN=$(cat /etc/systemd/system/ssh.service.d/*.conf | grep -c '^\\(Wants\\|After\\)=ssh-keygen') "
              "$(grep -c '^ExecStart=/usr/bin/ssh-keygen -A$' /etc/systemd/system/ssh-keygen.service) && "
              "echo TIMER=$(systemctl is-enabled apt-daily.timer)")
    res = _in_root(debian_root, script, env)
    assert res.returncode == 0, f"the hook failed: {res.stdout[-1500:]}{res.stderr[-1500:]}"
    seen = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    assert seen.get("PATH") == CENTOS_PATH, res.stdout
    assert seen.get("VISUDO") == "ok", res.stdout
    assert seen.get("OPT") == "absent", res.stdout
    # The hook installs its first-boot program in /usr/local/sbin: under sudo, as on CentOS 7,
    # that folder is not searched (dash's `command -v` exits 127 for a name it does not find).
    assert seen.get("LOCAL") == "127", res.stdout
    assert seen.get("SYSV") == "0", res.stdout  # `systemctl enable docker` runs no update-rc.d
    assert seen.get("KEYGEN") == "2 1", res.stdout  # sshd wants and waits for the unit making its host keys
    assert seen.get("TIMER") == "disabled", res.stdout

"""The Debian 12 box for the libvirt provider, built without an installer.

    rootfs     mmdebstrap (native speed) with the kernel, GRUB, sshd, Docker and etcd from
               Debian's archive, the vagrant user, and sudo's secure_path as CentOS 7.9 sets it
    disk       sfdisk + `mke2fs -d` straight into partition 1 of a raw file (no loop device,
               no mount); one boot from the kernel file installs GRUB inside; qcow2
    box        Packer's qemu builder (kvm where it works, tcg otherwise) boots it, checks what
               was baked in, and the vagrant post-processor makes the libvirt box

Like a fresh CentOS 7 VM the box holds no project image (busybox, the probe, the double):
provisioning copies them from the runner over SSH, as on every provider (stack/node_images.py).

The box is cached outside the checkout (CI works in a fresh clone every time), named by the hash
of its inputs, and rebuilt only when they change; `vagrant box add` puts it into the run's
VAGRANT_HOME.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from calicolab.core import config, shell
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.core.paths import ROOT
from calicolab.infra import images, kvm

TEMPLATE_DIR = ROOT / "packer" / "debian12"
# sudo's secure_path as CentOS 7.9's /etc/sudoers sets it: one script for the lab image and the box.
CENTOS_SUDOERS = ROOT / "packer" / "lab-node" / "scripts" / "centos-sudoers.sh"
# Units as CentOS 7.9 arranges them (SysV scripts, host keys, timers): the same, one script.
CENTOS_UNITS = ROOT / "packer" / "lab-node" / "scripts" / "centos-units.sh"
SUITE = "bookworm"
# What every run needs is baked in (Docker, etcd at bookworm's 3.4.23) with what makes a VM boot
# and take Vagrant's SSH; provisioning still installs and configures as the guide does, and finds
# them present.
PACKAGES = ("systemd-sysv", "udev", "dbus", "openssh-server", "linux-image-amd64", "initramfs-tools", "grub-pc",
            "sudo", "ifupdown", "isc-dhcp-client", "iproute2", "iptables", "iputils-ping", "procps", "kmod",
            "netbase", "curl", "ca-certificates", "less", "tcpdump", "net-tools",
            "docker.io", "etcd-server", "etcd-client",
            "python3")  # the double's calicoctl on the host, as the real binary (no container a call)
DISK_MIB = 6144
PART_OFFSET = 1048576  # partition 1 starts at 1 MiB, where the MBR gap for GRUB ends
FIRSTBOOT_MARKER = "CALICOLAB-FIRSTBOOT-OK"
FIRSTBOOT_TIMEOUT = 600  # a kernel boot and grub-install under TCG on a loaded machine
BUILD_TIMEOUT = 1800
VAGRANT_PRIVATE_KEY = "keys/vagrant"


def cache_dir(environ: dict[str, str] | None = None) -> Path:
    """Outside the checkout, so a fresh clone (CI) reuses the box as it reuses the Docker images:
    the box_cache machine setting, else the machine's cache folder."""
    environ = os.environ if environ is None else environ
    chosen = config.machine_value("box_cache", environ)
    if chosen:
        return Path(chosen)
    if os.geteuid() == 0:
        return Path("/var/cache/calicolab/boxes")
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "calicolab" / "boxes"


@dataclass(frozen=True)
class DebianBox:
    name: str        # as added to Vagrant: <prefix>/debian12
    inputs: str      # hash of everything the box is made from
    box_file: Path   # in the cache, named by the hash

    @property
    def log(self) -> Path:
        return self.box_file.with_suffix(".log")


def plan(cfg: ClusterConfig, cache: Path | None = None) -> DebianBox:
    """Decided without building: the hash covers the template folder (hooks, Packer template),
    the sudoers and units scripts, this builder, the package list, the suite and Vagrant's public
    key. No image the project builds is an input: the box carries none, so a rebuilt double or
    probe keeps the box."""
    inputs = images.hash_inputs(TEMPLATE_DIR, CENTOS_SUDOERS, CENTOS_UNITS, Path(__file__), SUITE, images.DEBIAN_MIRROR,
                                " ".join(PACKAGES), str(DISK_MIB), images.vagrant_public_key().read_text())
    return DebianBox(f"{cfg.prefix}/debian12", inputs, (cache or cache_dir()) / f"debian12-libvirt-{inputs}.box")


def check_tools() -> None:
    for tool, package in (("mmdebstrap", "mmdebstrap"), ("sfdisk", "fdisk"), ("mke2fs", "e2fsprogs"),
                          ("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils"),
                          ("packer", "packer"), ("vagrant", "vagrant")):
        shell.require(tool, f"run `invoke setup` (apt-get install {package})")


def build_box(cfg: ClusterConfig, say: Callable[[str], None], vagrant_env: dict[str, str]) -> DebianBox:
    """Build the box unless the cache holds one with the same inputs; add it to the run's Vagrant."""
    check_tools()
    box = plan(cfg)
    box.box_file.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time per cache (lanes and clones share it); the file appears only when whole.
    with (box.box_file.parent / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if box.box_file.exists():
            say(f"{box.name}: cached ({box.box_file})")
        else:
            say(f"{box.name}: building ({box.inputs}; log {box.log})")
            _build(box, say)
            _prune(box, say)
    shell.run(["vagrant", "box", "add", "--force", "--name", box.name, "--provider", "libvirt", str(box.box_file)],
              env=vagrant_env, timeout=900)
    return box


KEEP_BOXES = 3  # other checkouts (branches) may still want their own box


def _prune(box: DebianBox, say: Callable[[str], None]) -> None:
    """Keep the newest few boxes of the cache, so it does not grow by one per change."""
    older = sorted((p for p in box.box_file.parent.glob("debian12-libvirt-*.box") if p != box.box_file),
                   key=lambda p: p.stat().st_mtime, reverse=True)[KEEP_BOXES - 1:]
    for old in older:
        old.unlink(missing_ok=True)
        old.with_suffix(".log").unlink(missing_ok=True)
        say(f"    removed an older box from the cache: {old.name}")


def _build(box: DebianBox, say: Callable[[str], None]) -> None:
    work = box.box_file.parent / f"build-{box.inputs}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        rootfs, disk, qcow2 = work / "rootfs", work / "disk.raw", work / "disk.qcow2"
        steps: list[tuple[str, Callable[[], None]]] = [
            (f"rootfs: mmdebstrap {SUITE}", lambda: _rootfs(rootfs, box.log)),
            (f"disk: {DISK_MIB} MiB, ext4 written from the rootfs", lambda: _disk(rootfs, disk, box.log)),
            ("first boot: installing GRUB inside the image", lambda: _first_boot(rootfs, disk, box.log)),
            ("qcow2", lambda: _qcow2(rootfs, disk, qcow2)),
            (f"packer: qemu builder ({kvm.accelerator()}) and the vagrant post-processor",
             lambda: _packer(qcow2, work, box)),
        ]
        for what, step in steps:
            started = time.monotonic()
            say(f"    {what}")
            step()
            say(f"    ... {time.monotonic() - started:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _qcow2(rootfs: Path, disk: Path, qcow2: Path) -> None:
    shutil.rmtree(rootfs)
    # Uncompressed: Packer copies it once more and the box is gzipped anyway.
    shell.run(["qemu-img", "convert", "-O", "qcow2", str(disk), str(qcow2)], timeout=900)
    disk.unlink()


def _append_log(log: Path, cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        try:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=env).returncode
        except subprocess.TimeoutExpired:
            raise UserError(f"`{cmd[0]}` did not finish within {timeout:.0f} s: see {log}") from None
    if rc != 0:
        tail = [ln.strip() for ln in log.read_text().splitlines() if ln.strip()][-1:] or ["no output"]
        raise UserError(f"`{' '.join(cmd[:2])}` failed (exit {rc}): {tail[0]} (full log: {log})")


def rootfs_hook_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """What packer/debian12/scripts/rootfs-hook.sh reads (no folder of images any more)."""
    return dict(os.environ if environ is None else environ, VAGRANT_PUBKEY=str(images.vagrant_public_key()),
                FIRSTBOOT=str(TEMPLATE_DIR / "scripts" / "firstboot.sh"), CENTOS_SUDOERS=str(CENTOS_SUDOERS),
                CENTOS_UNITS=str(CENTOS_UNITS))


def _rootfs(rootfs: Path, log: Path) -> None:
    scripts = TEMPLATE_DIR / "scripts"
    env = rootfs_hook_env()
    # No recommends: the guide's packages and a bootable host, nothing else to copy into the disk.
    _append_log(log, ["mmdebstrap", "--variant=minbase", "--aptopt=APT::Install-Recommends \"false\"",
                      "--include=" + ",".join(PACKAGES),
                      f"--customize-hook={scripts / 'rootfs-hook.sh'} \"$1\"", SUITE, str(rootfs),
                      images.DEBIAN_MIRROR], BUILD_TIMEOUT, env)


def _disk(rootfs: Path, disk: Path, log: Path) -> None:
    with disk.open("wb") as fh:
        fh.truncate(DISK_MIB * 1024 * 1024)
    shell.run(["sfdisk", "--quiet", str(disk)], input="label: dos\nstart=2048, type=83, bootable\n")
    _append_log(log, ["mke2fs", "-q", "-t", "ext4", "-L", "calicoroot", "-E", f"offset={PART_OFFSET}",
                      "-d", str(rootfs), str(disk), f"{DISK_MIB - 1}M"], 900)


def _first_boot(rootfs: Path, disk: Path, log: Path) -> None:
    kernel = _newest(rootfs / "boot", "vmlinuz-")
    initrd = _newest(rootfs / "boot", "initrd.img-")
    cmd = ["qemu-system-x86_64", "-accel", kvm.accelerator(), "-cpu", kvm.cpu_model(), "-m", "1024", "-smp", "1",
           "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-net", "none",
           "-kernel", str(kernel), "-initrd", str(initrd),
           # panic=1 with -no-reboot: a failing first boot ends QEMU instead of hanging it.
           "-append", "root=/dev/vda1 rw console=ttyS0 panic=1 init=/usr/local/sbin/calicolab-firstboot",
           "-drive", f"file={disk},format=raw,if=virtio"]
    with log.open("a") as out:
        start = out.tell()
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        try:
            subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           timeout=FIRSTBOOT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise UserError(f"the image's first boot (GRUB install) did not finish within {FIRSTBOOT_TIMEOUT} s: "
                            f"see {log}") from None
    with log.open(errors="replace") as text:
        text.seek(start)
        booted = text.read()
    if FIRSTBOOT_MARKER not in booted:
        raise UserError(f"the image's first boot did not install GRUB: see {log}")


def _newest(folder: Path, prefix: str) -> Path:
    found = sorted(folder.glob(prefix + "*"))
    if not found:
        raise UserError(f"the rootfs has no {folder / prefix}*: is linux-image-amd64 in the package list?")
    return found[-1]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _packer(qcow2: Path, work: Path, box: DebianBox) -> None:
    partial = box.box_file.with_name(box.box_file.name + ".partial")
    key = images.vagrant_public_key().with_name("vagrant")
    variables = {"disk_image": str(qcow2), "disk_sha256": sha256(qcow2), "disk_size": f"{DISK_MIB}M",
                 "accelerator": kvm.accelerator(), "cpu_model": kvm.cpu_model(),
                 "ssh_private_key_file": str(key), "output_dir": str(work / "output"), "box_file": str(partial)}
    args = [a for k, v in sorted(variables.items()) for a in ("-var", f"{k}={v}")]
    env = dict(os.environ, PACKER_CACHE_DIR=str(work / "packer_cache"), CHECKPOINT_DISABLE="1")
    _append_log(box.log, ["packer", "build", "-color=false", "-force", *args, str(TEMPLATE_DIR)], BUILD_TIMEOUT, env)
    if not partial.exists():
        raise UserError(f"packer finished but made no box: see {box.log}")
    partial.rename(box.box_file)

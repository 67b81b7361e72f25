"""The CentOS 7 Vagrant box for the VM providers, built with Packer and added to Vagrant.

    virtualbox   packer build -only=virtualbox-iso.centos7  -> <box cache>/centos7-virtualbox.box
    libvirt      packer build -only=qemu.centos7            -> <box cache>/centos7-libvirt.box

Both steps are skipped when the hash of the inputs (template folder, kickstart, scripts, the
variables passed) matches the stamp file next to the box. The box cache is the Debian box's
(CALICOLAB_BOX_CACHE, else outside the checkout): a fresh clone (CI) reuses the box and the
~1 GB ISO Packer downloaded (its cache, packer_cache/, and the build log sit there too).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from calicolab.core import shell
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.core.paths import ROOT
from calicolab.infra.images import hash_inputs
from calicolab.infra.vm_debian import cache_dir

TEMPLATE_DIR = ROOT / "packer" / "centos7"
PLUGINS_FILE = TEMPLATE_DIR / "modern" / "plugins.pkr.hcl"
SOURCES = {"virtualbox": "virtualbox-iso.centos7", "libvirt": "qemu.centos7"}
# Tools per provider, with the hint shown when one is missing.
TOOLS = {
    "common": (("packer", "apt-get install packer, or Packer >= 1.7 from HashiCorp"),
               ("vagrant", "apt-get install vagrant")),
    "virtualbox": (("VBoxManage", "install VirtualBox 6.1.28+ or 7.x"),),
    "libvirt": (("qemu-system-x86_64", "apt-get install qemu-system-x86"),
                ("virsh", "apt-get install libvirt-daemon-system libvirt-clients")),
}
BUILD_TIMEOUT = 3 * 3600   # an ISO download plus an install; generous for slow mirrors


@dataclass(frozen=True)
class BoxPlan:
    provider: str
    name: str
    box_file: Path
    stamp: Path
    inputs: str
    build_cmd: tuple[str, ...]
    add_cmd: tuple[str, ...]


def check_tools(provider: str, which: Callable[[str], str | None] | None = None) -> None:
    which = which or shell.which_or_none
    if provider not in SOURCES:
        raise UserError(f"no CentOS box for provider {provider!r}: use virtualbox or libvirt")
    missing = [(tool, hint) for tool, hint in TOOLS["common"] + TOOLS[provider] if not which(tool)]
    if missing:
        names = ", ".join(t for t, _ in missing)
        hints = "; ".join(h for _, h in missing)
        raise UserError(f"cannot build the {provider} box: {names} not installed ({hints})")


def packer_version(text: str) -> tuple[int, int, int] | None:
    """`packer version` prints `Packer v1.6.6` (newer ones add lines after it)."""
    m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def vbox_is_7_or_newer(vbox_version_text: str) -> bool:
    m = re.match(r"\s*(\d+)\.", vbox_version_text)
    return bool(m) and int(m.group(1)) >= 7


def plan(cfg: ClusterConfig, provider: str, packer_vars: dict[str, str], box_dir: Path | None = None) -> BoxPlan:
    """Everything build_box will do, decided without running anything."""
    if provider not in SOURCES:
        raise UserError(f"no CentOS box for provider {provider!r}: use virtualbox or libvirt")
    box_dir = cache_dir() if box_dir is None else box_dir  # read at call time: the setting may change
    box_file = box_dir / f"centos7-{provider}.box"
    all_vars = {"box_dir": str(box_dir), "build_dir": str(box_dir / "build"), **packer_vars}
    # Paths are not inputs (a moved checkout builds the same box); everything else is.
    hashed_vars = sorted((k, v) for k, v in all_vars.items() if k not in ("box_dir", "build_dir"))
    inputs = hash_inputs(TEMPLATE_DIR, provider, repr(hashed_vars))
    var_args = [arg for k, v in sorted(all_vars.items()) for arg in ("-var", f"{k}={v}")]
    name = f"{cfg.prefix}/centos7"
    return BoxPlan(
        provider=provider, name=name, box_file=box_file,
        stamp=box_file.with_name(box_file.name + ".inputs"), inputs=inputs,
        build_cmd=("packer", "build", "-color=false", "-force", f"-only={SOURCES[provider]}",
                   *var_args, str(TEMPLATE_DIR)),
        add_cmd=("vagrant", "box", "add", "--force", "--name", name, "--provider", provider, str(box_file)),
    )


def is_current(p: BoxPlan) -> bool:
    return p.box_file.exists() and p.stamp.exists() and p.stamp.read_text().strip() == p.inputs


def box_added(name: str, provider: str, env: dict[str, str] | None = None) -> bool:
    out = shell.run(["vagrant", "box", "list", "--machine-readable"], check=False, timeout=120, env=env)
    return out.ok and _listed(out.stdout, name, provider)


def _listed(machine_readable: str, name: str, provider: str) -> bool:
    # Lines: <ts>,,box-name,<name> then <ts>,,box-provider,<provider> for each box.
    current = None
    for line in machine_readable.splitlines():
        fields = line.split(",", 3)
        if len(fields) < 4:
            continue
        if fields[2] == "box-name":
            current = fields[3]
        elif fields[2] == "box-provider" and current == name and fields[3] == provider:
            return True
    return False


def detect_vars(provider: str) -> dict[str, str]:
    """Variables that depend on the host's tools."""
    if provider != "virtualbox":
        return {}
    out = shell.run(["VBoxManage", "--version"], check=False, timeout=60)
    return {"vbox_nat_localhost_reachable": "true" if vbox_is_7_or_newer(out.stdout) else "false"}


def build_box(cfg: ClusterConfig, provider: str, say: Callable[[str], None],
              vagrant_env: dict[str, str] | None = None) -> Path:
    """Build and add the box unless its inputs are unchanged; return the box file."""
    check_tools(provider)
    p = plan(cfg, provider, detect_vars(provider))
    if is_current(p):
        if box_added(p.name, provider, vagrant_env):
            say(f"{p.name} ({provider}): up to date ({p.inputs})")
            return p.box_file
        say(f"{p.name} ({provider}): box file current, adding it to Vagrant")
    else:
        say(f"{p.name} ({provider}): building with Packer ({p.inputs}); this takes a while")
        p.box_file.parent.mkdir(parents=True, exist_ok=True)
        p.stamp.unlink(missing_ok=True)
        _packer_init_if_modern()
        # Packer's ISO cache beside the box: out of the template folder (the hashed inputs) and
        # out of the checkout, so a fresh clone does not download the ISO again.
        env = dict(os.environ, PACKER_CACHE_DIR=str(p.box_file.parent / "packer_cache"))
        log = p.box_file.parent / f"build-centos7-{provider}.log"
        shell.run_logged(p.build_cmd, str(log), timeout=BUILD_TIMEOUT, env=env, cwd=str(p.box_file.parent))
        if not p.box_file.exists():
            raise UserError(f"packer finished but {p.box_file} is missing: see {log}")
    shell.run(p.add_cmd, timeout=1800, env=vagrant_env)
    p.stamp.write_text(p.inputs + "\n")
    return p.box_file


def _packer_init_if_modern() -> None:
    # Packer 1.7+ keeps builders in plugins; 1.6.6 has them built in and rejects the file.
    version = packer_version(shell.run(["packer", "version"], check=False).stdout)
    if version and version >= (1, 7, 0):
        shell.run(["packer", "init", str(PLUGINS_FILE)], timeout=600)

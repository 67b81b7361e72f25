"""The local lab's images, each rebuilt only when its inputs change.

    calicolab/debian:bookworm        debootstrap minbase + docker import (no registry needed)
    calicolab/busybox:debian         busybox from Debian's busybox-static, for workloads
    calicolab/probe:debian           the disruption probe (workloads/probe/), python3-minimal
    calicolab/calico-node-double     the Calico double (calico_double/), when upstream is not used
    calicolab/lab-node:<hash>        Packer docker builder: systemd, sshd, vagrant user, baked packages

Every image carries a label with the hash of its inputs; a build is skipped when the label
of the existing image matches. busybox, the probe and the double are saved as tarballs on this
machine (paths.NODE_IMAGE_TARS); provisioning copies them to the nodes over SSH on every provider
(calicolab/stack/node_images.py). The node image carries none of them, as a CentOS 7 VM does not.
"""

from __future__ import annotations

import fcntl
import hashlib
import shlex
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from calicolab.core import shell
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.core.paths import CACHE, IMAGE_NAMESPACE, NODE_IMAGE_TARS, ROOT
from calicolab.stack import node_images

T = TypeVar("T")

LABEL = "calicolab.inputs"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_SUITE = "bookworm"
VAGRANT_KEY_GLOB = "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub"


@dataclass(frozen=True)
class ImageNames:
    base: str
    busybox: str
    probe: str
    calico_double: str
    lab_node_repo: str

    @classmethod
    def for_config(cls, cfg: ClusterConfig) -> ImageNames:
        # One namespace for every cluster prefix: matrix lanes share the images they build.
        # The saved ones are named where the nodes' delivery reads them (node_images).
        p = IMAGE_NAMESPACE
        return cls(base=f"{p}/debian:{BASE_SUITE}", busybox=node_images.busybox("").source,
                   probe=node_images.probe("").source,
                   calico_double=node_images.calico_double(cfg.versions.calico).source,
                   lab_node_repo=f"{p}/lab-node")


def hash_inputs(*parts: str | Path | Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            paths: Iterable[Path] = [part]
        elif isinstance(part, str):
            digest.update(part.encode())
            continue
        else:
            paths = part
        for path in sorted(paths):
            if path.is_dir():
                files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
            else:
                files = [path]
            for f in files:
                digest.update(str(f.relative_to(ROOT)).encode())
                digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def label_of(image: str) -> str | None:
    out = shell.run(["docker", "image", "inspect", "--format",
                     f'{{{{index .Config.Labels "{LABEL}"}}}}', image], check=False)
    return out.stdout.strip() if out.ok else None


def image_id(image: str) -> str:
    return shell.run(["docker", "image", "inspect", "--format", "{{.Id}}", image]).stdout.strip()


def ensure(image: str, inputs: str, build: Callable[[], None], say: Callable[[str], None]) -> bool:
    """Build image unless it exists with the same inputs hash; True when it was built."""
    if label_of(image) == inputs:
        say(f"{image}: up to date ({inputs})")
        return False
    say(f"{image}: building ({inputs})")
    build()
    if label_of(image) != inputs:
        raise UserError(f"building {image} did not produce an image labelled {inputs}")
    return True


def _log(name: str) -> str:
    CACHE.mkdir(exist_ok=True)
    return str(CACHE / f"build-{name}.log")


def build_base(names: ImageNames, inputs: str) -> None:
    shell.require("debootstrap", "run `invoke setup` (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="calicolab-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        shell.run_logged(["debootstrap", "--variant=minbase", BASE_SUITE, str(rootfs), DEBIAN_MIRROR],
                         _log("debootstrap"), timeout=900)
        shell.run(["sh", "-c", f"tar -C {rootfs} -c . | docker import --change "
                   f"'LABEL {LABEL}={inputs}' - {names.base}"], timeout=600)


def build_with_docker(context: Path, tag: str, inputs: str, base: str) -> None:
    shell.run_logged(["docker", "build", "--build-arg", f"BASE={base}", "--label", f"{LABEL}={inputs}",
                      "-t", tag, str(context)], _log(tag.split("/")[-1].replace(":", "-")), timeout=900)


def save(image: str, target: Path) -> None:
    """`docker save`, gzip-compressed (what `docker load` reads as it is): the nodes get a third
    of the double's bytes over SSH."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shell.run(["bash", "-o", "pipefail", "-c",
               f"docker save {shlex.quote(image)} | gzip -6 > {shlex.quote(str(target))}"], timeout=600)


def vagrant_public_key() -> Path:
    keys = sorted(Path("/").glob(VAGRANT_KEY_GLOB.lstrip("/")))
    if not keys:
        raise UserError("Vagrant's insecure public key was not found: run `invoke setup` "
                        "(apt-get install vagrant)")
    return keys[-1]


def baked_packages(cfg: ClusterConfig) -> str:
    """The default versions' packages, baked so a default run downloads nothing."""
    return "docker.io etcd-server etcd-client"


def _one_build_at_a_time(build: Callable[[ClusterConfig, Callable[[str], None]], T], cfg: ClusterConfig,
                         say: Callable[[str], None]) -> T:
    """Parallel lanes share the images and the cache: one build at a time on this machine."""
    shell.require("docker", "run `invoke setup`")
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build(cfg, say)


def build_all(cfg: ClusterConfig, say: Callable[[str], None], double: bool = True) -> dict[str, str]:
    """Make every image the lab needs; return their names for the effective configuration.
    One build at a time on this machine: parallel lanes share the images and the cache."""
    return _one_build_at_a_time(lambda c, s: _build_all(c, s, double), cfg, say)


def side_loaded(cfg: ClusterConfig, say: Callable[[str], None], double: bool = True) -> dict[str, Path]:
    """The images the nodes get from this machine instead of pulling, built and saved as
    tarballs for provisioning to copy over SSH: the probe always (the fault pass and the
    rehearsals), busybox and the Calico double when the double runs."""
    return _one_build_at_a_time(lambda c, s: _side_loaded(c, s, double), cfg, say)


def _side_loaded(cfg: ClusterConfig, say: Callable[[str], None], double: bool = True) -> dict[str, Path]:
    names = ImageNames.for_config(cfg)
    base_inputs = hash_inputs(BASE_SUITE, DEBIAN_MIRROR, "minbase")
    ensure(names.base, base_inputs, lambda: build_base(names, base_inputs), say)

    wanted = [(names.probe, ROOT / "workloads" / "probe", node_images.PROBE_TAR)]
    if double:
        wanted += [(names.busybox, ROOT / "workloads" / "busybox", node_images.BUSYBOX_TAR),
                   (names.calico_double, ROOT / "calico_double", node_images.DOUBLE_TAR)]
    tarballs: dict[str, Path] = {}
    for image, context, tar_name in wanted:
        inputs = hash_inputs(image_id(names.base), context)
        ensure(image, inputs, lambda i=image, c=context, h=inputs: build_with_docker(c, i, h, names.base), say)
        tar = NODE_IMAGE_TARS / tar_name
        stamp = tar.with_suffix(".id")
        if not tar.exists() or not stamp.exists() or stamp.read_text() != image_id(image):
            say(f"{image}: saving for the nodes ({tar})")
            partial = tar.with_name(tar.name + ".partial")
            try:
                save(image, partial)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            # Whole or not at all: a node may be copying the previous tar meanwhile.
            partial.replace(tar)
            stamp.write_text(image_id(image))
        tarballs[image] = tar
    return tarballs


def _build_all(cfg: ClusterConfig, say: Callable[[str], None], double: bool = True) -> dict[str, str]:
    names = ImageNames.for_config(cfg)
    # Saved for provisioning to copy over SSH; the node image itself carries none of them.
    _side_loaded(cfg, say, double)
    base_id = image_id(names.base)

    template_dir = ROOT / "packer" / "lab-node"
    packages = baked_packages(cfg)
    node_inputs = hash_inputs(base_id, template_dir, packages)
    node_image = f"{names.lab_node_repo}:{node_inputs}"

    def build_node() -> None:
        shell.require("packer", "run `invoke setup` (apt-get install packer)")
        shell.run_logged([
            "packer", "build", "-color=false", "-force",
            "-var", f"base_image={names.base}", "-var", f"image_repository={names.lab_node_repo}",
            "-var", f"image_tag={node_inputs}", "-var", f"inputs_hash={node_inputs}",
            "-var", f"vagrant_pubkey={vagrant_public_key()}",
            "-var", f"baked_packages={packages}", str(template_dir / "lab-node.pkr.hcl"),
        ], _log("packer-lab-node"), timeout=1800)

    ensure(node_image, node_inputs, build_node, say)
    return {"lab_node": node_image, "busybox": names.busybox, "calico_double": names.calico_double}

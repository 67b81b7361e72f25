"""Images the project builds, put into a node's Docker by provisioning, the same way on every provider.

A fresh CentOS 7 VM holds no project image and no folder of saved ones, so nothing is baked into
the lab's node image or the Debian box either: the runner builds each image once and saves it
(calicolab/infra/images.py `side_loaded()`, gzip-compressed into paths.NODE_IMAGE_TARS with a .id
stamp), and `deliver()` copies it to a node over SFTP, checks its sha256 there, loads it (`docker
load` reads gzip itself, in every Docker release) and names it as the suite runs it. A node whose
Docker already has the image is left alone. Compressed, the double crosses about a third of its
bytes (22 MB). Under TCG the `docker load` after the copy is the slow part, at about 0.19 s per MB
and 5 ms per file in dockerd: on an idle Debian 12 VM, 69-80 s for the image of 3,845 files,
41-54 s for 89 MB in 1,625 files, 39 s for 57 MB in 1,738 entries (calico_double/Dockerfile).
"""

from __future__ import annotations

import functools
import hashlib
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from calicolab.core import paths
from calicolab.core.errors import UserError
from calicolab.core.remote import Node

# The saved images' file names under paths.NODE_IMAGE_TARS (infra/images.py writes them).
BUSYBOX_TAR, PROBE_TAR, DOUBLE_TAR = "busybox.tar.gz", "probe.tar.gz", "calico-node-double.tar.gz"
LOAD_TIMEOUT = 600.0  # the double is ~90 MB unpacked; node.run scales it on emulated VMs


@dataclass(frozen=True)
class NodeImage:
    source: str  # its name on the runner, saved in the tar: what `docker load` restores
    name: str    # the name the suite runs it by on the node (a tag of source when they differ)
    tar: str     # file name under the runner's folder of saved images


def busybox(name: str) -> NodeImage:
    return NodeImage(f"{paths.IMAGE_NAMESPACE}/busybox:debian", name, BUSYBOX_TAR)


def probe(name: str) -> NodeImage:
    return NodeImage(f"{paths.IMAGE_NAMESPACE}/probe:debian", name, PROBE_TAR)


def calico_double(version: str) -> NodeImage:
    ref = f"{paths.IMAGE_NAMESPACE}/calico-node-double:{version}"
    return NodeImage(ref, ref, DOUBLE_TAR)


@dataclass(frozen=True)
class Delivery:
    changed: bool
    detail: str


def runner_tar(node: Node, image: NodeImage, folder: Path | None = None) -> Path:
    """The saved image on this machine, or one line saying how to make it."""
    tar = (folder or paths.NODE_IMAGE_TARS) / image.tar
    if not tar.is_file():
        raise UserError(f"{node.name}: cannot deliver {image.source}: its saved image {tar} is not on this "
                        "machine: run `invoke box` (it builds and saves the images the nodes need)")
    return tar


@functools.lru_cache(maxsize=16)
def _sha256(path: str, mtime_ns: int, size: int) -> str:  # noqa: ARG001 (the cache key: a rewritten tar)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    """Hashed once per file version: both nodes get the same tar at the same time."""
    st = path.stat()
    return _sha256(str(path), st.st_mtime_ns, st.st_size)


def _present(node: Node, name: str) -> bool:
    return node.run(f"docker image inspect {shlex.quote(name)} >/dev/null 2>&1").ok


def _stage(node: Node, tar: Path) -> tuple[str, str]:
    """Copy tar into a fresh folder of the SSH user's (mktemp -d: 0700) over SFTP; no file goes
    through a command line. Returns (folder, file)."""
    try:
        folder = node.conn.run("mktemp -d", hide=True, in_stream=False).stdout.strip()
        staged = f"{folder}/{tar.name}"
        node.conn.put(str(tar), staged)
    except (OSError, paramiko.SSHException, EOFError) as err:
        raise UserError(f"{node.name}: copying {tar.name} over SFTP failed ({err.__class__.__name__}: {err}): "
                        "is there room in the node's /tmp, and is the cluster up (`invoke up`)?") from None
    return folder, staged


def _unstage(node: Node, folder: str) -> None:
    node.conn.run(f"rm -rf {shlex.quote(folder)}", hide=True, warn=True, in_stream=False)


def deliver(node: Node, image: NodeImage, folder: Path | None = None) -> Delivery:
    """Put image into node's Docker unless it is there: copy, verify, load, name, clean up."""
    if _present(node, image.name):
        return Delivery(False, f"{image.name} present")
    if image.source != image.name and _present(node, image.source):
        # Loaded before under its own name (an earlier run): naming it is enough.
        node.run(f"docker tag {shlex.quote(image.source)} {shlex.quote(image.name)}", check=True)
        return Delivery(True, f"docker tag {image.source} {image.name}")
    tar = runner_tar(node, image, folder)
    want = sha256(tar)
    stamp = tar.with_suffix(".id")
    want_id = stamp.read_text().strip() if stamp.is_file() else ""
    began = time.monotonic()
    staging, staged = _stage(node, tar)
    copied = time.monotonic()
    try:
        res = node.run(f"sha256sum {shlex.quote(staged)}", timeout=300)
        seen = res.stdout.split()[0] if res.ok and res.stdout.split() else ""
        if seen != want:
            raise UserError(f"{node.name}: {tar.name} arrived changed (sha256 {seen or res.describe()}, sent "
                            f"{want}): not loaded; check the node's disk space and run `invoke provision` again")
        checked = time.monotonic()
        res = node.run(f"docker load -i {shlex.quote(staged)}", timeout=LOAD_TIMEOUT)
        if not res.ok:
            raise UserError(f"{node.name}: `docker load` of {tar.name} failed "
                            f"({(res.stderr or res.stdout).strip()[-160:]}): is Docker running there?")
        loaded = time.monotonic()
    finally:
        _unstage(node, staging)
    if want_id:
        got = node.run(f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(image.source)}")
        if got.stdout.strip() != want_id:
            raise UserError(f"{node.name}: {tar.name} did not hold {image.source} {want_id} (seen "
                            f"{got.stdout.strip() or 'none'}): run `invoke box` to save it again")
    if image.source != image.name:
        node.run(f"docker tag {shlex.quote(image.source)} {shlex.quote(image.name)}", check=True)
    size = tar.stat().st_size / 1e6
    # Where the step's time went (the slowest step of provisioning on an emulated VM).
    return Delivery(True, f"{image.name} copied ({size:.0f} MB in {copied - began:.1f} s, sha256 {want[:12]} in "
                          f"{checked - copied:.1f} s) and loaded ({loaded - checked:.1f} s)")

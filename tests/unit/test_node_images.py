"""Images put into a node's Docker from the runner (calicolab/stack/node_images.py), against a
FakeNode whose SSH connection keeps what SFTP sent: present means nothing is copied; absent means
copied, its sha256 checked on the node as `sha256sum` prints it (coreutils: "<hex>  <file>"),
loaded, named, the staged copy removed; a copy that arrived changed is never loaded; a saved image
missing on the runner is one line saying what to do. The provisioning steps and the probe use it
instead of the folder the lab image and the Debian box used to carry (a CentOS 7 VM has none)."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakes import FakeNode

from calicolab.core import config, paths, state
from calicolab.core.errors import UserError
from calicolab.infra import images, preflight, vm_box
from calicolab.runs.lifecycle import Lifecycle
from calicolab.stack import disruption, node_images
from provision import calico, platform, workloads
from provision.context import Context

STAGING = "/tmp/tmp.Xa1b2C3d4e"  # what `mktemp -d` prints for the SSH user
LOADED_ID = "sha256:" + "ab" * 32


@dataclass
class FakeConn:
    """The unprivileged SSH side of a node (Fabric's Connection): mktemp, SFTP put, rm."""

    corrupt: bool = False  # flip a byte in transit, as a truncated or damaged copy would arrive
    files: dict[str, bytes] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def run(self, cmd: str, **_kw: object) -> SimpleNamespace:
        self.calls.append(cmd)
        if cmd == "mktemp -d":
            return SimpleNamespace(stdout=STAGING + "\n", exited=0)
        match = re.fullmatch(r"rm -rf (\S+)", cmd)
        assert match, f"unexpected command on the SSH user's side: {cmd!r}"
        folder = shlex.split(match.group(1))[0]
        for name in [n for n in self.files if n.startswith(folder + "/")]:
            del self.files[name]
        return SimpleNamespace(stdout="", exited=0)

    def put(self, local: str, remote: str) -> None:
        self.calls.append(f"put {remote}")
        data = Path(local).read_bytes()
        if self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.files[remote] = data


def docker_node(loaded: set[str], *, image_id: str = LOADED_ID, source: str = "", corrupt: bool = False,
                name: str = "node1") -> FakeNode:
    """A node's Docker as a set of image names: inspect, load (restores `source`), tag, and
    sha256sum over what SFTP put."""
    conn = FakeConn(corrupt=corrupt)

    def inspect(cmd: str) -> tuple[int, str]:
        ref = shlex.split(cmd)[-1] if "--format" in cmd else shlex.split(cmd.split(">")[0])[-1]
        if ref not in loaded:
            return 1, ""
        return 0, (image_id + "\n") if "--format" in cmd else ""

    def sha256sum(cmd: str) -> tuple[int, str]:
        path = shlex.split(cmd)[-1]
        if path not in conn.files:
            return 1, ""
        return 0, f"{hashlib.sha256(conn.files[path]).hexdigest()}  {path}\n"

    def load(cmd: str) -> tuple[int, str]:
        assert shlex.split(cmd)[-1] in conn.files, "loaded a file that was not staged"
        loaded.add(source)
        return 0, f"Loaded image: {source}\n"

    def tag(cmd: str) -> tuple[int, str]:
        src, dst = shlex.split(cmd)[-2:]
        if src not in loaded:
            return 1, ""
        loaded.add(dst)
        return 0, ""

    node = FakeNode(name, rules=[(r"^docker image inspect", inspect), (r"^sha256sum ", sha256sum),
                                 (r"^docker load -i ", load), (r"^docker tag ", tag)])
    node.conn = conn  # type: ignore[attr-defined]
    return node


@pytest.fixture
def saved(tmp_path) -> Path:
    """The runner's folder as images.side_loaded() leaves it: a tar and its .id stamp each."""
    folder = tmp_path / "node-images"
    folder.mkdir()
    for tar in (node_images.PROBE_TAR, node_images.BUSYBOX_TAR, node_images.DOUBLE_TAR):
        (folder / tar).write_bytes(b"saved image " + tar.encode() * 64)
        (folder / tar).with_suffix(".id").write_text(LOADED_ID)
    return folder


def test_an_image_present_on_the_node_is_left_alone(saved):
    probe = node_images.probe("calicolab-probe:latest")
    node = docker_node({"calicolab-probe:latest"}, source=probe.source)
    done = node_images.deliver(node, probe, saved)
    assert not done.changed
    assert node.conn.calls == [], "expected nothing copied to a node that has the image"
    assert not any("docker load" in c for c in node.commands)


def test_an_absent_image_is_copied_checked_loaded_named_and_unstaged(saved):
    probe = node_images.probe("calicolab-probe:latest")
    loaded: set[str] = set()
    node = docker_node(loaded, source=probe.source)
    done = node_images.deliver(node, probe, saved)

    staged = f"{STAGING}/{node_images.PROBE_TAR}"
    assert done.changed and {probe.source, "calicolab-probe:latest"} <= loaded
    assert node.conn.calls == ["mktemp -d", f"put {staged}", f"rm -rf {STAGING}"]
    order = [c.split()[0] + " " + c.split()[1] for c in node.commands]
    assert order.index("sha256sum " + staged) < order.index("docker load"), order
    assert f"docker tag {probe.source} calicolab-probe:latest" in node.commands
    assert node.conn.files == {}, "expected the staged copy removed"


def test_a_copy_that_arrived_changed_is_not_loaded(saved):
    probe = node_images.probe("calicolab-probe:latest")
    loaded: set[str] = set()
    node = docker_node(loaded, source=probe.source, corrupt=True)
    with pytest.raises(UserError) as err:
        node_images.deliver(node, probe, saved)
    want = hashlib.sha256((saved / node_images.PROBE_TAR).read_bytes()).hexdigest()
    assert "sha256" in str(err.value) and want in str(err.value) and "not loaded" in str(err.value)
    assert not any(c.startswith("docker load") for c in node.commands), node.commands
    assert loaded == set() and node.conn.files == {} and node.conn.calls[-1] == f"rm -rf {STAGING}"


def test_a_saved_image_missing_on_the_runner_is_one_line_saying_what_to_do(tmp_path):
    double = node_images.calico_double("v2.6.1")
    node = docker_node(set(), source=double.source, name="node2")
    with pytest.raises(UserError) as err:
        node_images.deliver(node, double, tmp_path / "empty")
    text = str(err.value)
    assert "\n" not in text
    assert "node2" in text and double.source in text and "invoke box" in text
    assert str(tmp_path / "empty" / node_images.DOUBLE_TAR) in text
    assert node.conn.calls == [], "expected nothing copied"


def test_a_tar_holding_another_image_than_its_stamp_is_refused(saved):
    probe = node_images.probe("calicolab-probe:latest")
    node = docker_node(set(), source=probe.source, image_id="sha256:" + "cd" * 32)
    with pytest.raises(UserError, match="did not hold"):
        node_images.deliver(node, probe, saved)


# -- the callers: provisioning (busybox, the double) and the fault pass's probe ----------------
def _ctx(node: FakeNode, tmp_path: Path) -> Context:
    cfg = config.load({"run_dir": str(tmp_path / "run")}, environ={})
    return Context(cfg, node, cfg.node(node.name), platform.CENTOS, facts={"calico_source": "double"})


def test_provisioning_and_the_probe_copy_from_the_runner_instead_of_a_baked_folder(saved, tmp_path, monkeypatch):
    """Each of them ran `docker load -i /opt/calicolab/images/...`, a folder only the lab image and
    the Debian box carried: on a CentOS 7 VM it does not exist."""
    monkeypatch.setattr(paths, "NODE_IMAGE_TARS", saved)
    loaded: set[str] = set()
    version = config.load({}, environ={}).versions.calico
    double = node_images.calico_double(version)
    for caller, image in ((lambda n: workloads.busybox(_ctx(n, tmp_path)), node_images.busybox(workloads.IMAGE)),
                          (lambda n: calico.image(_ctx(n, tmp_path)), double),
                          (disruption.ensure_image, node_images.probe(disruption.IMAGE))):
        node = docker_node(loaded, source=image.source)
        caller(node)
        assert image.name in loaded, f"expected {image.name} in the node's Docker"
        assert node.conn.calls[1] == f"put {STAGING}/{image.tar}"
        assert not any(paths.NODE_IMAGES in c for c in node.commands), node.commands


# -- the runner saves them for every provider ----------------------------------------------------
@pytest.mark.parametrize(("source", "double"), [("double", True), ("upstream", False)])
def test_the_box_stage_saves_the_node_images_for_a_centos_vm_too(tmp_path, monkeypatch, source, double):
    """The old box stage made them only for the lab and the Debian box (which baked them): a
    CentOS VM run had no probe to copy. The probe always; busybox and the double with the double."""
    cfg = config.load({"run_dir": str(tmp_path / "run"), "reports_dir": str(tmp_path / "reports"),
                       "provider": "virtualbox"}, environ={})
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(preflight, "check_run_dir", lambda _cfg: None)
    monkeypatch.setattr(images, "side_loaded", lambda _cfg, _say, dbl=True: calls.append(("saved", dbl)) or {})
    monkeypatch.setattr(vm_box, "build_box", lambda *_a, **_k: calls.append(("box", None)))
    state.update(cfg, calico_source=source)
    lc = Lifecycle(cfg, say=lambda _m: None)
    lc.box()
    assert calls == [("saved", double), ("box", None)]
    lc.node_images()  # provision and verify ask again: once per lifecycle is enough
    assert calls == [("saved", double), ("box", None)]


def _fake_docker(folder: Path, body: str) -> str:
    """A PATH whose `docker` is the given shell script's body (the real tools after it)."""
    folder.mkdir()
    tool = folder / "docker"
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def test_a_saved_image_is_gzip_that_unpacks_to_what_docker_save_wrote(tmp_path, monkeypatch):
    # The nodes get it compressed (a third of the double's bytes over SSH); `docker load` reads
    # gzip as it is. Unpacked, it must be byte for byte what `docker save` wrote.
    written = b"image tar " * 5000
    (tmp_path / "tar").write_bytes(written)
    monkeypatch.setenv("PATH", _fake_docker(tmp_path / "bin", f'[ "$1" = save ] && cat {tmp_path / "tar"}'))
    target = tmp_path / "saved" / node_images.DOUBLE_TAR
    images.save("calicolab/calico-node-double:v2.6.1", target)
    packed = target.read_bytes()
    assert packed[:2] == b"\x1f\x8b", "expected gzip's magic number"
    assert gzip.decompress(packed) == written
    assert len(packed) < len(written) / 10


def test_a_failed_save_leaves_no_file_to_copy(tmp_path, monkeypatch):
    # `docker save` failing half-way (its output cut short) must not leave a tar that gzip closed
    # cleanly: the pipe's failure is the step's, and the partial file goes.
    monkeypatch.setenv("PATH", _fake_docker(tmp_path / "bin", 'echo "partial"; echo "no such image" >&2; exit 1'))
    monkeypatch.setattr(images, "NODE_IMAGE_TARS", tmp_path / "saved")
    monkeypatch.setattr(images, "ensure", lambda *_a, **_k: None)
    monkeypatch.setattr(images, "image_id", lambda _name: "sha256:" + "ab" * 32)
    cfg = config.load({"run_dir": str(tmp_path / "run")}, environ={})
    with pytest.raises(UserError, match="no such image"):
        images._side_loaded(cfg, lambda _m: None, double=False)
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == []

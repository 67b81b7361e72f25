"""The Debian box's image preload against the real Docker engine of this host: the images land
in the box's /var/lib/docker, and the host's own Docker keeps its docker0 bridge (a temporary
dockerd started with `--bridge none` in the host's network namespace deletes it)."""

from __future__ import annotations

import json
import subprocess

import pytest

from calicolab.core import shell
from calicolab.infra import vm_debian


def _docker0() -> bool:
    return shell.run(["ip", "link", "show", "docker0"], check=False).ok


@pytest.fixture
def tiny_image_tar(tmp_path, docker_engine):
    if not shell.which_or_none("dockerd"):
        pytest.skip("needs dockerd on this host for the temporary daemon (run `invoke setup`)")
    if not _docker0():
        pytest.skip("needs the host Docker's docker0 bridge (Docker started with its default bridge)")
    # A tiny image of our own, so the test needs no registry: the host's `docker save` of a
    # one-file image built from scratch.
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello").write_text("calicolab preload test\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY hello /hello\n")
    tag = "calicolab-preload-test:1"
    shell.run(["docker", "build", "-q", "-t", tag, str(ctx)], timeout=120)
    images = tmp_path / "images"
    images.mkdir()
    try:
        shell.run(["docker", "save", "-o", str(images / "preload-test.tar"), tag], timeout=120)
        image_id = shell.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag]).stdout.strip()
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)
    return images, tag, image_id


def test_preload_puts_the_images_in_the_box_and_leaves_the_hosts_bridge(tmp_path, tiny_image_tar):
    images, tag, image_id = tiny_image_tar
    rootfs, work = tmp_path / "rootfs", tmp_path / "build-preloadtest"
    (rootfs / "var" / "lib").mkdir(parents=True)
    work.mkdir()
    vm_debian._preload(rootfs, images, work, tmp_path / "build.log")

    assert _docker0(), ("expected the host's docker0 still there after the preload, seen it gone: "
                        "the temporary dockerd ran in the host's network namespace")
    data = rootfs / "var" / "lib" / "docker"
    repos = json.loads((data / "image" / "overlay2" / "repositories.json").read_text())["Repositories"]
    name = tag.split(":")[0]
    assert repos.get(name, {}).get(tag) == image_id, f"expected {tag} -> {image_id} in the box, seen {repos}"
    assert (data / "overlay2").is_dir()
    left = [n for n in vm_debian.PRELOAD_DROP if (data / n).exists()]
    assert not left, f"expected the temporary daemon's runtime folders gone, seen {left}"
    assert not vm_debian.preload_exec_root(work).exists(), "expected the temporary daemon's exec root removed"

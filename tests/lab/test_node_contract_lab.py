"""The lab node against the CentOS 7 side of the node contract, on a real lab cluster.

Before provisioning a node is what a fresh CentOS 7.9 VM is to the suite: sudo's PATH is exactly
CentOS 7.9's secure_path (sudo-1.8.23's /etc/sudoers: /sbin:/bin:/usr/sbin:/usr/bin), a bare
`calicoctl` under `sudo -n sh -c` is not found (exit 127, POSIX "command not found"), there is no
/opt/calicolab/images and the node's Docker holds no image of the project's. After provisioning
the images the suite needs are in the node's Docker, copied from this machine's saved tars, and
`calicoctl` still runs only by its absolute path, as on CentOS 7.
"""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from calicolab.core import config, paths, shell
from calicolab.stack import node_images

CENTOS_SECURE_PATH = "/sbin:/bin:/usr/sbin:/usr/bin"
NODES = ("node1", "node2")
CALICOCTL = "/usr/local/bin/calicoctl"  # where provisioning installs it (the guide's step)


def _sudo(container: str, cmd: str) -> subprocess.CompletedProcess[str]:
    """As the suite runs a command on a node: the vagrant user, `sudo -n sh -c`."""
    return subprocess.run(["docker", "exec", "-u", "vagrant", container, "sudo", "-n", "sh", "-c", cmd],
                          capture_output=True, text=True, timeout=120)


def _project_images(container: str) -> list[str]:
    """Image names in the node's Docker store, read off its files (Docker is not started before
    provisioning); any name of the project's namespace, busybox or the probe counts."""
    res = _sudo(container, "cat /var/lib/docker/image/*/repositories.json 2>/dev/null || true")
    names: list[str] = []
    for doc in res.stdout.replace("}{", "}\n{").splitlines():
        if doc.strip():
            names += list(json.loads(doc).get("Repositories", {}))
    ours = (paths.IMAGE_NAMESPACE + "/", "busybox", "calicolab-probe")
    return [n for n in names if n.startswith(ours)]


def _images_env() -> dict[str, str]:
    # The lane keeps no CALICOLAB_ setting of the caller's; where images live stays the caller's.
    return {"CALICOLAB_IMAGE_NAMESPACE": paths.IMAGE_NAMESPACE}


def test_a_fresh_lab_node_is_a_fresh_centos_7_host_to_the_suite(lane):
    up = lane.invoke("up", timeout=900, **_images_env())
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-2000:]
    containers = {n: f"{lane.prefix}-{n}" for n in NODES}
    assert sorted(containers.values()) == lane.containers()

    for container in containers.values():
        path = _sudo(container, "echo $PATH")
        assert path.returncode == 0 and path.stdout == CENTOS_SECURE_PATH + "\n", path
        bare = _sudo(container, "calicoctl")
        assert bare.returncode == 127, f"{container}: expected bare calicoctl not found (127), seen {bare}"
        baked = _sudo(container, f"test -e {shlex.quote(paths.NODE_IMAGES)}")
        assert baked.returncode == 1, f"{container}: expected no {paths.NODE_IMAGES}, seen {baked}"
        assert _project_images(container) == [], f"{container}: project images before provisioning"

    provisioned = lane.invoke("provision", timeout=900, **_images_env())
    assert provisioned.returncode == 0, provisioned.stdout[-3000:] + provisioned.stderr[-2000:]
    assert "copied" in provisioned.stdout, provisioned.stdout[-3000:]
    version = config.load({}, environ={}).versions.calico  # the lane runs the default versions
    wanted = [node_images.calico_double(version), node_images.busybox("busybox:latest")]
    for container in containers.values():
        for image in wanted:
            stamp = (paths.NODE_IMAGE_TARS / image.tar).with_suffix(".id").read_text().strip()
            seen = _sudo(container, f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(image.name)}")
            assert seen.stdout.strip() == stamp, f"{container}: {image.name} is {seen}, the runner saved {stamp}"
        assert _sudo(container, "calicoctl").returncode == 127, "bare calicoctl found under CentOS 7's PATH"
        assert _sudo(container, f"test -x {CALICOCTL}").returncode == 0, f"{container}: no {CALICOCTL}"
        left = _sudo(container, "ls /tmp/tmp.*/*.tar* 2>/dev/null | wc -l")
        assert left.stdout.strip() == "0", f"{container}: staged copies left in /tmp: {left}"


@pytest.fixture(autouse=True)
def _needs_the_lab_tools(docker_engine) -> None:
    for tool in ("vagrant", "packer"):
        if not shell.which_or_none(tool):
            pytest.skip(f"this test needs {tool}: run `invoke setup`")

"""Strict artifacts on the VM path, with the real task: `CALICOLAB_STRICT_ARTIFACTS=true invoke e2e
--provider libvirt` (the CentOS box, the default flavour) while calicoctl (no published checksum)
is neither pinned nor locked stops in preflight, before any box is built, with one line naming
it, exit 2; so does a run whose calicoctl is locked but whose calico/node image is not (the image
digest is checked in preflight too, not when a node pulls it after the box build); with the lock
recorded by `invoke lock --record` preflight passes and the box stage starts.

The upstream settings point at the local mirror (`invoke mirror`: a real registry and file
server serving the double's image and calicoctl), so the registry and file checks pass and the
strict check is the one that refuses. etcd 3.3.11 comes from CentOS extras (no download), so
calicoctl is the only release file such a run downloads. Needs the Docker engine, the libvirt
tools and vagrant-libvirt; no VM is booted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from labkit import wait_until

from calicolab.core import config, shell
from calicolab.core.paths import ROOT
from calicolab.infra import images, mirror
from calicolab.stack import downloads

CENTOS_VM = ("--provider", "libvirt", "--etcd", "3.3.11", "--docker", "20.10.24")


def test_strict_mode_refuses_an_unlocked_calicoctl_before_the_box_and_passes_with_the_lock(lane, tmp_path):
    for tool in ("virsh", "qemu-system-x86_64", "docker-registry", "tinyproxy"):
        if not shell.which_or_none(tool):
            pytest.skip(f"this test needs {tool}: run `invoke setup`")
    lab_cfg = config.load({"run_dir": str(lane.run_dir), "prefix": lane.prefix}, environ={})
    images.side_loaded(lab_cfg, lambda _m: None)  # what the mirror serves (cached after the first build)
    served = lane.invoke("mirror")
    assert served.returncode == 0, served.stdout[-2000:] + served.stderr[-2000:]
    settings = dict(line.split("export ", 1)[1].split("=", 1) for line in served.stdout.splitlines()
                    if "export " in line)
    lock_file = tmp_path / "artifacts.lock"
    env = {**settings, "CALICOLAB_LOCK_FILE": str(lock_file), "CALICOLAB_STRICT_ARTIFACTS": "true",
           "CALICOLAB_CALICO_SOURCE": "upstream"}

    refused = lane.invoke("e2e", *CENTOS_VM, timeout=300, **env)
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert len(lines) == 1 and "calicoctl v1.6.1 is neither pinned nor locked" in lines[0], refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    assert "==> box" not in refused.stdout, refused.stdout[-2000:]  # refused before any box build
    assert not (lane.run_dir / "vagrant.d" / "boxes").exists()  # no box added either

    # Recorded by the command a user runs once on a trusted machine (here: against the mirror).
    recorded = lane.invoke("lock", "--record", timeout=300, **env)
    assert recorded.returncode == 0, recorded.stdout[-2000:] + recorded.stderr[-2000:]
    held = json.loads(lock_file.read_text())["artifacts"]
    calicoctl = downloads.calicoctl_binary("v1.6.1", settings["CALICOLAB_DOWNLOAD_BASE"])
    assert held[calicoctl.key]["sha256"] == downloads_sha256(mirror.calicoctl_file(lab_cfg))

    # calicoctl locked, calico/node not: refused in preflight too, before any box.
    image = f"image {settings['CALICOLAB_CALICO_NODE_IMAGE']}:v2.6.1"
    forgot = lane.invoke("lock", "--forget", image, **env)
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    refused = lane.invoke("e2e", *CENTOS_VM, timeout=300, **env)
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert len(lines) == 1 and f"{image} is neither pinned nor locked" in lines[0], refused.stderr
    assert "invoke lock --record" in lines[0]
    assert "==> box" not in refused.stdout and not (lane.run_dir / "vagrant.d" / "boxes").exists()
    assert not lane.dotfile.exists()  # no Vagrant machine state either
    recorded = lane.invoke("lock", "--record", timeout=300, **env)
    assert recorded.returncode == 0, recorded.stdout[-2000:] + recorded.stderr[-2000:]

    log = tmp_path / "e2e.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "invoke", "e2e", *CENTOS_VM], cwd=ROOT, env=lane.env(**env),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Preflight passed: the box stage (a CentOS 7 Packer build) starts; it is not waited for.
        wait_until("the box stage after preflight", lambda: "==> box" in log.read_text(errors="replace"),
                   timeout=300, proc=proc, log=log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=300)
    output = log.read_text(errors="replace")
    assert "calico source: upstream: every upstream part answers" in output, output[-2000:]
    assert "neither pinned nor locked" not in output


def downloads_sha256(path) -> str:
    return shell.run(["sha256sum", str(path)]).stdout.split()[0]

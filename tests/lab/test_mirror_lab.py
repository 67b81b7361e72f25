"""The upstream path for real, offline: `invoke mirror` serves the double's image as
calico/node:v2.6.1 and the double's calicoctl as the calicoctl release through a real registry
(Debian's docker-registry) and an HTTP file server on the host. As a user's first step on a
connected runner, `invoke lock --record` records the lock against it (calicoctl's sha256 and the
images' digests, from the registry's v2 API); then a strict run (the nightly's setting) with
`auto` takes upstream, pulls by digest and verifies against that lock, through the mirror's real
proxy. A strict run with an unlocked image stops in preflight before any box or node exists; a
tampered file on the server and a lock that names another digest are refused with one line, exit
2, nothing left behind; the reports say the double ran, served as calico/node, with its digest.
`invoke destroy` stops the mirror."""

from __future__ import annotations

import hashlib
import json
import time
import xml.etree.ElementTree as ET

import pytest

from calicolab.core import config, shell
from calicolab.infra import mirror

CALICOCTL = "calicoctl v1.6.1"


def _ok(res, code: int = 0) -> str:
    print(f"[{time.strftime('%H:%M:%S')}] invoke {' '.join(res.args[3:])}: exit {res.returncode}", flush=True)
    assert res.returncode == code, f"exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    assert "Traceback" not in res.stdout + res.stderr, res.stdout[-3000:] + res.stderr
    return res.stdout


def test_the_upstream_path_through_a_local_registry_and_file_server(lane, tmp_path):
    for tool in ("docker-registry", "tinyproxy"):
        if not shell.which_or_none(tool):
            pytest.skip(f"the local mirror needs Debian's {tool}: run `invoke setup`")
    out = _ok(lane.invoke("mirror"))
    settings = dict(line.split("export ", 1)[1].split("=", 1) for line in out.splitlines() if "export " in line)
    assert set(settings) == {"CALICOLAB_CALICO_NODE_IMAGE", "CALICOLAB_BUSYBOX_IMAGE", "CALICOLAB_INSECURE_REGISTRY",
                             "CALICOLAB_DOWNLOAD_BASE"}
    lock_file = tmp_path / "artifacts.lock"
    env = {**settings, "CALICOLAB_LOCK_FILE": str(lock_file), "CALICOLAB_STRICT_ARTIFACTS": "true",
           "CALICOLAB_CALICO_SOURCE": "upstream"}
    cfg = config.load({"run_dir": str(lane.run_dir)}, environ={})
    served_by = mirror.read(cfg)
    assert served_by is not None
    image = f"image {settings['CALICOLAB_CALICO_NODE_IMAGE']}:v2.6.1"
    busybox = f"image {settings['CALICOLAB_BUSYBOX_IMAGE']}:latest"

    # The first step on a connected runner: record the lock with the command, from the mirror.
    recorded = _ok(lane.invoke("lock", "--record", timeout=300, **env))
    locked = json.loads(lock_file.read_text())["artifacts"]
    assert set(locked) == {CALICOCTL, image, busybox}
    # First principles: the served file's sha256, and the digests the registry's own storage
    # holds for the tags (distribution keeps each tag's current manifest digest in its link file).
    served_sha = hashlib.sha256(mirror.calicoctl_file(cfg).read_bytes()).hexdigest()
    assert locked[CALICOCTL]["sha256"] == served_sha and served_sha in recorded
    repos = mirror.folder(cfg) / "registry" / "docker" / "registry" / "v2" / "repositories"
    for key, repo, tag in ((image, "calico/node", "v2.6.1"), (busybox, "library/busybox", "latest")):
        link = repos / repo / "_manifests" / "tags" / tag / "current" / "link"
        assert locked[key]["digest"] == link.read_text().strip(), key
        assert locked[key]["digest"] in recorded
    assert "review it" in recorded and "commit it" in recorded

    # A strict run with `auto`: everything locked and reachable, so upstream; verified against
    # the lock, images pulled by digest, and the nodes sent through the mirror's real proxy
    # (tinyproxy): its log shows Docker's pulls and curl's download.
    first = _ok(lane.invoke("e2e", "--suite", "read-only", timeout=900,
                            **{**env, "CALICOLAB_CALICO_SOURCE": "auto"}, **served_by.proxy_settings()))
    assert "calico source: upstream: every upstream part answers" in first
    assert "first use" not in first and "pulled by digest" in first and "verified, locked in" in first
    props = {p.get("name"): p.get("value") for p in ET.parse(lane.reports_dir / "lifecycle.xml").iter("property")}
    assert props["calico"] == "double"  # decided by inspecting what ran, not by the setting
    assert props["calico_seen"].startswith(f"served as {settings['CALICOLAB_CALICO_NODE_IMAGE']}:v2.6.1, sha256:")
    assert locked[image]["digest"] in props["calico_seen"]
    assert json.loads((lane.reports_dir / "timings.json").read_text())["calico"] == "double"
    proxied = mirror.proxy_log(cfg).read_text()
    assert f"GET http://{served_by.registry}/v2/" in proxied, proxied[-2000:]
    assert "/projectcalico/calicoctl/releases/download/v1.6.1/calicoctl" in proxied, proxied[-2000:]

    # An unlocked image under strict mode: refused in preflight, before any box or node exists.
    _ok(lane.invoke("lock", "--forget", busybox, **env))
    res = lane.invoke("e2e", "--suite", "read-only", timeout=300, **env)
    _ok(res, code=2)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{busybox} is neither pinned nor locked" in lines[0], res.stderr
    assert "invoke lock --record" in lines[0]
    assert "==> box" not in res.stdout and "==> up" not in res.stdout, res.stdout[-2000:]
    assert lane.leftovers() == {}  # no node container, network or Vagrant state
    _ok(lane.invoke("lock", "--record", timeout=300, **env))

    # A tampered calicoctl on the server: refused in one line, nothing installed, nothing left.
    served = mirror.calicoctl_file(cfg)
    good = served.read_bytes()
    served.write_bytes(good + b"\n# tampered\n")
    res = lane.invoke("e2e", "--suite", "read-only", timeout=900, **env)
    _ok(res, code=2)
    assert f"{CALICOCTL} from" in res.stderr and "does not match" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert lane.containers() == []
    served.write_bytes(good)

    # A lock naming another digest: the pull by digest fails, in one line, exit 2.
    locked = json.loads(lock_file.read_text())
    locked["artifacts"][image]["digest"] = "sha256:" + "0" * 64
    lock_file.write_text(json.dumps(locked))
    res = lane.invoke("e2e", "--suite", "read-only", timeout=900, **env)
    _ok(res, code=2)
    assert "sha256:" + "0" * 64 in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert lane.containers() == []

    # `invoke destroy` of the run folder stops the mirror.
    _ok(lane.invoke("destroy"))
    assert mirror.running(cfg) is None

    # Without the mirror, an explicit upstream stops in preflight: one line, nothing built or started.
    res = lane.invoke("e2e", "--suite", "read-only", timeout=300, **env)
    _ok(res, code=2)
    assert "cannot complete" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "==> box" not in res.stdout and lane.containers() == []

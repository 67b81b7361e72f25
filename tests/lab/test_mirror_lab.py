"""The upstream path for real, offline: `invoke mirror` serves the double's image as
calico/node:v2.6.1 and the double's calicoctl as the calicoctl release through a real registry
(Debian's docker-registry) and an HTTP file server on the host; `invoke e2e --calico-source
upstream` pulls and downloads through it. The first run records the lock, the second verifies it
and pulls by digest, a tampered file on the server and a lock that names another digest are
refused with one line, exit 2, nothing left behind; the reports say the double ran, served as
calico/node, with its digest. `invoke destroy` stops the mirror."""

from __future__ import annotations

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
    env = {**settings, "CALICOLAB_LOCK_FILE": str(lock_file), "CALICOLAB_CALICO_SOURCE": "upstream"}

    # First run, with `auto`: every upstream part answers, so auto is upstream; everything is
    # pulled and downloaded through the mirror, and locked on first use.
    first = _ok(lane.invoke("e2e", "--suite", "read-only", timeout=900, **{**env, "CALICOLAB_CALICO_SOURCE": "auto"}))
    assert "calico source: upstream: every upstream part answers" in first
    assert f"!!! {CALICOCTL}: first use, recorded" in first
    locked = json.loads(lock_file.read_text())["artifacts"]
    image = f"image {settings['CALICOLAB_CALICO_NODE_IMAGE']}:v2.6.1"
    assert set(locked) == {CALICOCTL, image, f"image {settings['CALICOLAB_BUSYBOX_IMAGE']}:latest"}
    props = {p.get("name"): p.get("value") for p in ET.parse(lane.reports_dir / "lifecycle.xml").iter("property")}
    assert props["calico"] == "double"  # decided by inspecting what ran, not by the setting
    assert props["calico_seen"].startswith(f"served as {settings['CALICOLAB_CALICO_NODE_IMAGE']}:v2.6.1, sha256:")
    assert locked[image]["digest"] in props["calico_seen"]
    assert json.loads((lane.reports_dir / "timings.json").read_text())["calico"] == "double"

    # Second run: verified against the lock, images pulled by digest, and the nodes sent through
    # the mirror's real proxy (tinyproxy): its log shows Docker's pulls and curl's download.
    cfg = config.load({"run_dir": str(lane.run_dir)}, environ={})
    served_by = mirror.read(cfg)
    assert served_by is not None
    second = _ok(lane.invoke("e2e", "--suite", "read-only", timeout=900, **env, **served_by.proxy_settings()))
    assert "first use" not in second and "pulled by digest" in second and "verified, locked in" in second
    proxied = mirror.proxy_log(cfg).read_text()
    assert f"GET http://{served_by.registry}/v2/" in proxied, proxied[-2000:]
    assert "/projectcalico/calicoctl/releases/download/v1.6.1/calicoctl" in proxied, proxied[-2000:]

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

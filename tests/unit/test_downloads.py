"""Verified downloads (calicolab/stack/downloads.py, provision/fetch.py): pins with where they
were published, the lock recorded on first use and verified after, strict mode, and a tampered
file or image refused in one line with nothing installed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
from fake_registry import LIST, MANIFEST, OCI_INDEX, Served, index, manifest, serving
from fake_registry import sha256 as sha256_of
from fakes import FakeNode

from calicolab.core import config
from calicolab.core.errors import UserError
from calicolab.core.paths import ROOT
from calicolab.stack import downloads, registry, upstream
from provision import fetch

CALICOCTL = downloads.calicoctl_binary("v1.6.1")
GOOD, BAD = "a" * 64, "b" * 64
STAGED = "/usr/local/bin/calicoctl.download"


def test_every_pin_says_where_it_was_published():
    assert set(downloads.ETCD_PINS) >= {"3.3.11", "3.4.23", "3.4.27", "3.5.16", "3.5.30"}
    for pin in downloads.ETCD_PINS.values():
        assert len(pin.sha256) == 64 and pin.published


def test_first_use_records_then_later_runs_verify(tmp_path):
    lock = downloads.Lock.load(tmp_path / "artifacts.lock")
    said: list[str] = []
    assert "recorded on first use" in downloads.check(CALICOCTL, lock, False, GOOD, said.append)
    assert said and said[0].startswith("!!! calicoctl v1.6.1: first use")
    again = downloads.Lock.load(tmp_path / "artifacts.lock")  # what the next run reads
    assert json.loads((tmp_path / "artifacts.lock").read_text())["artifacts"]["calicoctl v1.6.1"]["sha256"] == GOOD
    assert "locked in artifacts.lock" in downloads.check(CALICOCTL, again, False, GOOD)
    with pytest.raises(UserError) as err:
        downloads.check(CALICOCTL, again, False, BAD)
    assert GOOD in str(err.value) and BAD in str(err.value) and "nothing was installed" in str(err.value)


def test_strict_mode_refuses_what_is_not_pinned_or_locked(tmp_path):
    lock = downloads.Lock.load(tmp_path / "artifacts.lock")
    with pytest.raises(UserError, match="neither pinned nor locked"):
        downloads.check(CALICOCTL, lock, True, GOOD)
    assert not (tmp_path / "artifacts.lock").exists()


def test_a_pin_wins_over_the_lock_and_cannot_be_locked_away(tmp_path):
    etcd = downloads.etcd_archive("3.5.16")
    lock = downloads.Lock.load(tmp_path / "artifacts.lock")
    with pytest.raises(UserError, match="pinned, published in"):
        downloads.check(etcd, lock, False, BAD)


def test_a_broken_lock_file_is_one_line(tmp_path):
    (tmp_path / "artifacts.lock").write_text("{not json")
    with pytest.raises(UserError, match="cannot be read"):
        downloads.Lock.load(tmp_path / "artifacts.lock")


def _node(sha: str, fetch_rc: int = 0) -> FakeNode:
    return FakeNode(rules={r"^curl -fsSL": (fetch_rc, f"{sha}\n" if fetch_rc == 0 else ""),
                           r"^rm -f ": (0, "")})


def test_a_file_that_does_not_match_its_lock_is_removed_and_refused(tmp_path):
    lock = downloads.Lock.load(tmp_path / "artifacts.lock")
    lock.record(CALICOCTL, GOOD)
    node = _node(BAD)
    with pytest.raises(UserError, match="does not match"):
        fetch.file(node, CALICOCTL, STAGED, lock, False, say=lambda _m: None)
    assert node.commands[-1] == f"rm -f {STAGED}"
    assert fetch.file(_node(GOOD), CALICOCTL, STAGED, lock, False).startswith("verified")


def test_a_failed_download_is_one_line(tmp_path):
    lock = downloads.Lock.load(tmp_path / "artifacts.lock")
    with pytest.raises(UserError, match="download of calicoctl v1.6.1 .* failed"):
        fetch.file(_node("", fetch_rc=22), CALICOCTL, STAGED, lock, False)


def test_the_fetch_command_prints_the_real_sha256(tmp_path):
    if not shutil.which("curl") or not shutil.which("sha256sum"):
        pytest.skip("curl or sha256sum is not installed")
    source = tmp_path / "calicoctl"
    source.write_bytes(b"calicoctl bytes")
    out = subprocess.run(["sh", "-c", downloads.fetch_command(source.as_uri(), str(tmp_path / "got"))],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == hashlib.sha256(b"calicoctl bytes").hexdigest()


IMAGE = downloads.image("calico/node:v2.6.1")
DIGEST = "sha256:" + "c" * 64


def test_an_image_is_locked_by_digest_on_first_use_then_pulled_by_digest(tmp_path):
    lock = downloads.Lock.load(tmp_path / "artifacts.lock")
    first = FakeNode(rules={r"^docker pull 'calico/node:v2.6.1'$|^docker pull calico/node:v2.6.1$": (0, ""),
                            r"^docker image inspect -f": (0, f"calico/node@{DIGEST} \n")})
    assert "pulled by tag" in fetch.image(first, IMAGE, lock, False, say=lambda _m: None)
    assert lock.expected(IMAGE) == (DIGEST, "locked in artifacts.lock")
    later = FakeNode(rules={rf"^docker pull calico/node@{DIGEST}$": (0, ""),
                            rf"^docker tag calico/node@{DIGEST} calico/node:v2.6.1$": (0, "")})
    assert fetch.image(later, IMAGE, lock, False).startswith("pulled by digest")
    assert later.commands[0] == f"docker pull calico/node@{DIGEST}"


def test_an_image_whose_locked_digest_is_gone_is_refused(tmp_path):
    lock = downloads.Lock.load(tmp_path / "artifacts.lock")
    lock.record(IMAGE, DIGEST)
    node = FakeNode(rules={r"^docker pull ": (1, "manifest unknown")})
    with pytest.raises(UserError, match="docker pull calico/node@sha256"):
        fetch.image(node, IMAGE, lock, False)


# ---- `invoke lock --record`: a fake registry (Bearer challenge, v2 API) and file server ----------

CALICOCTL_BYTES = b"#!/bin/sh\necho calicoctl v1.6.1\n"
NODE = manifest(b"calico-node-layer")
BUSYBOX_AMD64 = manifest(b"busybox-layer")


def _served() -> Served:
    return Served(manifests={("calico/node", "v2.6.1"): (MANIFEST, NODE),
                             ("library/busybox", "latest"): (OCI_INDEX, index(BUSYBOX_AMD64))},
                  files={"/projectcalico/calicoctl/releases/download/v1.6.1/calicoctl": CALICOCTL_BYTES})


def _cfg(tmp_path, registry_url: str, files_url: str, **more) -> config.ClusterConfig:
    return config.load({"run_dir": str(tmp_path / "run"), "registry_mirror": registry_url,
                        "download_base": files_url, "lock_file": str(tmp_path / "artifacts.lock"), **more},
                       environ={})


def test_record_writes_the_sha256_of_the_bytes_served_after_a_bearer_challenge(tmp_path):
    hub, files = _served(), _served()
    with serving(hub) as reg, serving(files) as base:
        cfg = _cfg(tmp_path, reg, base)
        resolved, changed = upstream.record_lock(cfg, cfg.lock_path)
    assert changed == {}
    locked = json.loads((tmp_path / "artifacts.lock").read_text())["artifacts"]
    # First principles: a file's hash is the sha256 of its bytes; a manifest's digest is the
    # sha256 of the manifest bytes served for the tag (the index, for a multi-platform image:
    # what `docker pull busybox` records as its RepoDigest).
    assert locked["calicoctl v1.6.1"]["sha256"] == hashlib.sha256(CALICOCTL_BYTES).hexdigest()
    assert locked["image calico/node:v2.6.1"]["digest"] == f"sha256:{sha256_of(NODE)}"
    assert locked["image busybox:latest"]["digest"] == f"sha256:{sha256_of(index(BUSYBOX_AMD64))}"
    assert locked["image busybox:latest"]["digest"] != f"sha256:{sha256_of(BUSYBOX_AMD64)}"
    # Docker Hub's naming (busybox is library/busybox) and one anonymous token per repository,
    # asked for with the scope the challenge named.
    assert hub.tokens_issued == ["repository:calico/node:pull", "repository:library/busybox:pull"]
    assert [r.artifact.key for r in resolved] == ["calicoctl v1.6.1", "image calico/node:v2.6.1",
                                                  "image busybox:latest"]
    assert resolved[1].via == f"{reg}/v2/calico/node/manifests/v2.6.1"
    # What a strict run then needs is all there.
    strict = _cfg(tmp_path, reg, base, strict_artifacts="true")
    lock = downloads.Lock.load(strict.lock_path)
    assert all(lock.expected(a) for a in upstream.upstream_artifacts(strict))


def test_a_manifest_type_docker_accepts_is_asked_for():
    # A registry answers 404 for a tag whose manifest type is not in Accept (Docker Hub does for
    # OCI indexes); the client asks for every type `docker pull` accepts.
    assert {LIST, MANIFEST, OCI_INDEX} <= set(registry.MANIFEST_TYPES)


def test_nothing_is_written_when_anything_fails(tmp_path):
    broken = _served()
    del broken.manifests[("library/busybox", "latest")]
    before = '{"version": 1, "artifacts": {}}\n'
    (tmp_path / "artifacts.lock").write_text(before)
    with serving(broken) as reg, serving(_served()) as base, pytest.raises(UserError) as err:
        upstream.record_lock(_cfg(tmp_path, reg, base), tmp_path / "artifacts.lock")
    assert "library/busybox:latest" in str(err.value) and "404" in str(err.value) and "\n" not in str(err.value)
    assert (tmp_path / "artifacts.lock").read_text() == before  # calicoctl and calico/node resolved, not written
    (tmp_path / "artifacts.lock").unlink()
    # No calicoctl on the file server.
    with serving(_served()) as reg, serving(Served()) as base, pytest.raises(UserError, match="HTTP 404"):
        upstream.record_lock(_cfg(tmp_path, reg, base), tmp_path / "artifacts.lock")
    assert not (tmp_path / "artifacts.lock").exists()


def test_an_unreachable_registry_is_one_line_from_the_task_and_nothing_is_written(tmp_path):
    with serving(Served()) as gone:
        pass  # the port is closed now: nothing answers there
    with serving(_served()) as base:
        env = {**os.environ, "CALICOLAB_REGISTRY_MIRROR": gone, "CALICOLAB_DOWNLOAD_BASE": base,
               "CALICOLAB_LOCK_FILE": str(tmp_path / "artifacts.lock")}
        env.pop("CALICOLAB_CLUSTER_FILE", None)
        res = subprocess.run([sys.executable, "-m", "invoke", "lock", "--record"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"registry {gone} cannot be reached" in lines[0], res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert not (tmp_path / "artifacts.lock").exists()


def test_the_task_prints_each_value_with_its_source_and_says_to_commit(tmp_path):
    with serving(_served()) as reg, serving(_served()) as base:
        env = {**os.environ, "CALICOLAB_REGISTRY_MIRROR": reg, "CALICOLAB_DOWNLOAD_BASE": base,
               "CALICOLAB_LOCK_FILE": str(tmp_path / "artifacts.lock")}
        res = subprocess.run([sys.executable, "-m", "invoke", "lock", "--record"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert hashlib.sha256(CALICOCTL_BYTES).hexdigest() in res.stdout
    assert f"{base}/projectcalico/calicoctl/releases/download/v1.6.1/calicoctl" in res.stdout
    assert f"sha256:{sha256_of(NODE)}" in res.stdout and f"{reg}/v2/calico/node/manifests/v2.6.1" in res.stdout
    assert "review it" in res.stdout and "commit it" in res.stdout


def test_record_goes_through_the_configured_proxy(tmp_path):
    # download_base names a host that does not resolve: only the proxy (the fake, serving absolute
    # URLs from its own tables) can answer it. The registry on loopback bypasses the proxy.
    proxy = _served()
    with serving(_served()) as reg, serving(proxy) as via:
        cfg = _cfg(tmp_path, reg, "http://artifacts.invalid", http_proxy=via, https_proxy=via)
        upstream.record_lock(cfg, cfg.lock_path)
    assert proxy.proxied == ["http://artifacts.invalid/projectcalico/calicoctl/releases/download/v1.6.1/calicoctl"]
    locked = json.loads((tmp_path / "artifacts.lock").read_text())["artifacts"]
    assert locked["calicoctl v1.6.1"]["sha256"] == hashlib.sha256(CALICOCTL_BYTES).hexdigest()


def test_a_registry_asking_for_basic_auth_is_one_line():
    scheme, params = registry.parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                              'scope="repository:library/busybox:pull"')
    assert scheme == "bearer" and params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                                             "scope": "repository:library/busybox:pull"}
    with pytest.raises(UserError, match="basic authentication"):
        registry._token(registry.Client(), 'Basic realm="Registry Realm"', "x")


def test_image_names_follow_dockers_rules():
    hub = registry.parse_image("busybox:latest")
    assert (hub.registry, hub.repository, hub.tag) == ("https://registry-1.docker.io", "library/busybox", "latest")
    assert registry.parse_image("calico/node:v2.6.1").repository == "calico/node"
    mirror = registry.parse_image("172.17.0.1:5000/calico/node:v2.6.1", insecure_registry="172.17.0.1:5000")
    assert (mirror.registry, mirror.repository) == ("http://172.17.0.1:5000", "calico/node")
    assert registry.parse_image("calico/node:v2.6.1", "https://harbor.example.com").registry == \
        "https://harbor.example.com"
    # A mirror serves Docker Hub's names only: a named registry stays itself.
    assert registry.parse_image("quay.io/calico/node:v2.6.1", "https://harbor.example.com").registry == \
        "https://quay.io"

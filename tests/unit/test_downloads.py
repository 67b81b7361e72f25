"""Verified downloads (calicolab/stack/downloads.py, provision/fetch.py): pins with where they
were published, the lock recorded on first use and verified after, strict mode, and a tampered
file or image refused in one line with nothing installed."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest
from fakes import FakeNode

from calicolab.core.errors import UserError
from calicolab.stack import downloads
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

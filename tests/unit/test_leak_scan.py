"""No secrets in reports or logs: the scan finds key material (with or without its BEGIN line)
and token shapes, names file and line but never the secret; a run with a leak fails loudly."""

from __future__ import annotations

import pytest

from calicolab.core import config
from calicolab.core.errors import StageFailed
from calicolab.report import leak_scan
from calicolab.runs.lifecycle import Lifecycle

BODY = "MIIEowIBAAKCAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzI"
KEY = f"-----BEGIN RSA PRIVATE KEY-----\n{BODY}\nw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoP\n" \
      "-----END RSA PRIVATE KEY-----\n"


SECRET_SHAPES = [
    ("-----BEGIN OPENSSH PRIVATE KEY-----", "private key block"),
    ("x -----BEGIN EC PRIVATE KEY----- y", "private key block"),
    ("-----BEGIN PRIVATE KEY-----", "private key block"),
    ("-----BEGIN ENCRYPTED PRIVATE KEY-----", "private key block"),
    ("-----BEGIN PGP PRIVATE KEY BLOCK-----", "private key block"),
    ("token ghp_" + "a" * 36, "GitHub token"),
    ("AKIA" + "B" * 16, "AWS access key id"),
    ("Authorization: Bearer " + "c" * 30, "bearer token"),
]


# Test ids name the kind, never the secret shape: the unit JUnit file lands in reports/, which is scanned.
@pytest.mark.parametrize("text,kind", SECRET_SHAPES, ids=[f"{kind} {i}" for i, (_t, kind) in enumerate(SECRET_SHAPES)])
def test_secret_shapes_are_found(text, kind):
    assert leak_scan.scan_text(f"first line\n{text}\n") == [(2, kind)]


@pytest.mark.parametrize("text", [
    "-----BEGIN CERTIFICATE-----",  # certificates are public
    "-----BEGIN PUBLIC KEY-----",
    "ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr vagrant insecure public key",
    "ETCD_KEY_FILE=/etc/calico/certs/client.key",  # a path to a key is not a key
    "Cluster Store: etcd://192.168.223.131:2379",
])
def test_ordinary_report_text_is_not_flagged(text):
    assert leak_scan.scan_text(text) == []


def test_a_key_body_without_its_begin_line_is_found_by_the_run_folders_keys(tmp_path):
    run = tmp_path / "run" / ".vagrant" / "machines" / "node1" / "docker"
    run.mkdir(parents=True)
    (run / "private_key").write_text(KEY)
    bodies = leak_scan.key_bodies(tmp_path / "run")
    assert BODY in bodies
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "e2e.xml").write_text(f"<system-out>cat key\n{BODY}\n</system-out>")
    findings = leak_scan.scan([reports], bodies)
    assert [(f.path.name, f.line, f.kind) for f in findings] == [
        ("e2e.xml", 2, "a line of one of this run's private keys")]
    assert BODY not in str(findings[0])  # the finding never repeats the secret


def test_redact_removes_whole_and_truncated_blocks():
    text = f"before\n{KEY}middle\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn..."
    out = leak_scan.redact(text)
    assert "PRIVATE KEY" not in out and BODY not in out and "b3Blbn" not in out
    assert out.startswith("before\n[private key redacted") and "middle" in out
    assert leak_scan.scan_text(out) == []


def _lifecycle(tmp_path):
    cfg = config.load({"run_dir": str(tmp_path / "run"), "reports_dir": str(tmp_path / "reports"),
                       "prefix": "arti"}, environ={})
    return cfg, Lifecycle(cfg, say=lambda _m: None)


def test_finish_fails_loudly_when_a_report_holds_a_private_key(tmp_path):
    cfg, lc = _lifecycle(tmp_path)
    leak = cfg.reports_path / "artifacts" / "stage-verify" / "node1" / "calico-node-logs.txt"
    leak.parent.mkdir(parents=True)
    leak.write_text("log line\n" + KEY)
    said: list[str] = []
    lc.say = said.append
    with pytest.raises(StageFailed, match=r"private key material in 1 place\(s\), first .*calico-node-logs.txt:2"):
        lc.finish()
    assert any(line.startswith("!!! SECRETS IN THE REPORTS") for line in said)
    assert BODY not in "\n".join(said)
    xml = (cfg.reports_path / "lifecycle.xml").read_text()
    assert 'name="secrets scan"' in xml and "<failure" in xml and BODY not in xml


def test_finish_keeps_the_error_already_on_its_way_out(tmp_path):
    cfg, lc = _lifecycle(tmp_path)
    cfg.reports_path.mkdir(parents=True)
    (cfg.reports_path / "leak.log").write_text(KEY)
    with pytest.raises(ValueError, match="the real failure"):
        try:
            raise ValueError("the real failure")
        finally:
            lc.finish()
    assert [s.name for s in lc.report.stages] == ["secrets scan"]


def test_run_folder_logs_are_scanned_but_its_key_files_are_not_findings(tmp_path):
    cfg, lc = _lifecycle(tmp_path)
    keys = cfg.run_path / ".vagrant" / "machines" / "node1" / "docker"
    keys.mkdir(parents=True)
    (keys / "private_key").write_text(KEY)
    lc.finish()  # the key where it belongs: no finding
    (cfg.run_path / "vagrant-up.stderr.log").write_text(f"oops\n{BODY}\n")
    with pytest.raises(StageFailed, match="vagrant-up.stderr.log:2"):
        lc.finish()

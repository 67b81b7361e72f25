"""The etcd_tls setting: configuration, the per-cluster CA, rendered files, etcd queries and
the certificate step (fake nodes)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import FakeNode

from calicolab.core import config, paths
from calicolab.core.errors import UserError
from calicolab.stack import etcd_query, etcd_tls
from provision import calico, docker, etcd
from provision import etcd_tls as tls_step
from provision.context import Context
from provision.platform import DEBIAN

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="openssl is not installed (the host makes the certificates with it)")


def _cfg(tmp_path: Path | None = None, **over: str) -> config.ClusterConfig:
    if tmp_path is not None:
        over["run_dir"] = str(tmp_path / "run")
    return config.load(over, environ={})


def _settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# -- configuration --------------------------------------------------------------------------------
def test_default_is_plain_http():
    cfg = _cfg()
    assert cfg.etcd_tls is False
    assert cfg.etcd_endpoints == "http://192.168.223.131:2379,http://192.168.223.130:2379"


@pytest.mark.parametrize("value,want", [("true", True), ("TRUE", True), ("yes", True), ("false", False),
                                        ("0", False), (True, True)])
def test_environment_and_flag_set_it(value, want):
    assert config.load(environ={"CALICOLAB_ETCD_TLS": str(value)}).etcd_tls is want
    assert config.load({"etcd_tls": value}, environ={"CALICOLAB_ETCD_TLS": str(not want)}).etcd_tls is want


def test_tls_endpoints_are_https_and_peers_stay_http():
    cfg = _cfg(etcd_tls="true")
    assert cfg.etcd_endpoints == "https://192.168.223.131:2379,https://192.168.223.130:2379"
    assert cfg.initial_cluster.count("http://") == 2


def test_a_bad_value_is_one_line():
    with pytest.raises(UserError, match="^etcd_tls must be true or false, not 'sometimes'$"):
        _cfg(etcd_tls="sometimes")


@pytest.mark.parametrize("task", ["box", "up", "provision", "verify", "e2e", "bench"])
def test_every_cluster_task_takes_the_flag(task):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALICOLAB_")}
    res = subprocess.run([sys.executable, "-m", "invoke", task, "--etcd-tls", "maybe"], cwd=paths.ROOT,
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == "error: etcd_tls must be true or false, not 'maybe'"


def test_the_setting_survives_the_effective_copy(tmp_path):
    cfg = _cfg(tmp_path, etcd_tls="true")
    written = config.write_effective(cfg)
    assert json.loads(written.read_text())["etcd_tls"] is True
    assert config.from_effective(written).etcd_tls is True


# -- the per-cluster CA ---------------------------------------------------------------------------
def _x509(path: Path, *args: str) -> str:
    return subprocess.run(["openssl", "x509", "-in", str(path), "-noout", *args], capture_output=True,
                          text=True, check=True).stdout


@needs_openssl
def test_pki_has_private_keys_and_the_node_ips_as_sans(tmp_path):
    cfg = _cfg(tmp_path)
    folder = etcd_tls.ensure_pki(cfg).folder
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    for name in etcd_tls.HOST_FILES:
        want = 0o600 if name.endswith("-key.pem") else 0o644
        assert (folder / name).stat().st_mode & 0o777 == want, name
    sans = _x509(folder / "server.pem", "-ext", "subjectAltName")
    for ip in ("192.168.223.131", "192.168.223.130", "127.0.0.1"):
        assert f"IP Address:{ip}" in sans
    assert "TLS Web Client Authentication" in _x509(folder / "client.pem", "-ext", "extendedKeyUsage")
    verify = subprocess.run(["openssl", "verify", "-CAfile", "ca.pem", "server.pem", "client.pem"], cwd=folder,
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert not list(folder.glob("*.csr")) and not list(folder.glob("*.ext"))


@needs_openssl
def test_pki_is_kept_until_the_nodes_change_or_a_fresh_one_is_asked(tmp_path):
    cfg = _cfg(tmp_path)
    first = etcd_tls.ensure_pki(cfg).ca_fingerprint
    assert etcd_tls.ensure_pki(cfg).ca_fingerprint == first
    moved = _cfg(tmp_path, subnet="192.168.242.0/24")
    second = etcd_tls.ensure_pki(moved).ca_fingerprint
    assert second != first
    assert "IP Address:192.168.242.131" in _x509(etcd_tls.pki_folder(moved) / "server.pem", "-ext",
                                                  "subjectAltName")
    assert etcd_tls.ensure_pki(moved, fresh=True).ca_fingerprint != second


def test_a_missing_openssl_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="openssl is missing on this machine"):
        etcd_tls.ensure_pki(_cfg(tmp_path), fresh=True)


# -- rendered files -------------------------------------------------------------------------------
def test_etcd_conf_serves_clients_over_tls_with_client_certificates():
    cfg = _cfg(etcd_tls="true")
    got = _settings(etcd.render_conf(cfg, cfg.node("node1")))
    assert got["ETCD_LISTEN_CLIENT_URLS"] == '"https://192.168.223.131:2379,https://127.0.0.1:2379"'
    assert got["ETCD_ADVERTISE_CLIENT_URLS"] == '"https://192.168.223.131:2379"'
    assert got["ETCD_LISTEN_PEER_URLS"] == '"http://192.168.223.131:2380"'
    assert got["ETCD_CERT_FILE"] == '"/etc/etcd/pki/server.pem"'
    assert got["ETCD_KEY_FILE"] == '"/etc/etcd/pki/server-key.pem"'
    assert got["ETCD_TRUSTED_CA_FILE"] == '"/etc/etcd/pki/ca.pem"'
    assert got["ETCD_CLIENT_CERT_AUTH"] == '"true"'
    assert "ETCD_CERT_FILE" not in etcd.render_conf(_cfg(), cfg.node("node1"))


def test_daemon_json_gives_the_cluster_store_the_client_files():
    node = _cfg().node("node1")
    assert json.loads(docker.render_daemon_json(node, tls=True)) == {
        "cluster-store": "etcd://192.168.223.131:2379",
        "cluster-store-opts": {"kv.cacertfile": "/etc/calico/certs/ca.pem",
                               "kv.certfile": "/etc/calico/certs/client.pem",
                               "kv.keyfile": "/etc/calico/certs/client-key.pem"}}


def test_calico_env_unit_and_calicoctl_cfg_name_the_client_files():
    cfg = _cfg(etcd_tls="true")
    art = calico.CalicoArtifacts.for_config(cfg, "double")
    env = _settings(calico.render_env(cfg, cfg.node("node2"), art))
    assert env["ETCD_ENDPOINTS"] == '"https://192.168.223.131:2379,https://192.168.223.130:2379"'
    assert (env["ETCD_CA_FILE"], env["ETCD_CERT_FILE"], env["ETCD_KEY_FILE"]) == (
        '"/etc/calico/certs/ca.pem"', '"/etc/calico/certs/client.pem"', '"/etc/calico/certs/client-key.pem"')
    unit = calico.render_unit(art, use_privileged=True, tls=True)
    assert " -v /etc/calico/certs:/etc/calico/certs:ro \\\n" in unit
    assert "-e ETCD_CA_CERT_FILE=${ETCD_CA_FILE}" in unit
    assert "/etc/calico/certs" not in calico.render_unit(art, use_privileged=True)
    ctl_cfg = calico.render_calicoctl_cfg(cfg)
    for line in ('  etcdEndpoints: "https://192.168.223.131:2379,https://192.168.223.130:2379"',
                 '  etcdCACertFile: "/etc/calico/certs/ca.pem"', '  etcdCertFile: "/etc/calico/certs/client.pem"',
                 '  etcdKeyFile: "/etc/calico/certs/client-key.pem"'):
        assert line in ctl_cfg.splitlines()
    assert "etcdKeyFile" not in calico.render_calicoctl_cfg(_cfg())


# -- etcd queries ---------------------------------------------------------------------------------
def test_etcdctl_gets_the_client_certificate_for_https_endpoints():
    node = FakeNode(rules={
        r"^ETCDCTL_API=2 etcdctl --endpoints \S+ (--ca-file \S+ --cert-file \S+ --key-file \S+ )?member list$":
            "4386666900514948734: name=node1 peerURLs=http://192.168.223.131:2380 isLeader=true\n",
        r"^ETCDCTL_API=3 etcdctl --endpoints \S+ --cacert \S+ --cert \S+ --key \S+ endpoint health$":
            "https://192.168.223.131:2379 is healthy: successfully committed proposal\n"})
    etcd_query.etcdctl(node, "member list", "3.4.23", _cfg(etcd_tls="true").etcd_endpoints)
    assert "--ca-file /etc/calico/certs/ca.pem --cert-file /etc/calico/certs/client.pem " \
           "--key-file /etc/calico/certs/client-key.pem" in node.commands[-1]
    etcd_query.etcdctl(node, "endpoint health", "3.5.16", _cfg(etcd_tls="true").etcd_endpoints)
    assert node.commands[-1].startswith("ETCDCTL_API=3 ")
    assert "--cacert /etc/calico/certs/ca.pem --cert /etc/calico/certs/client.pem" in node.commands[-1]
    etcd_query.etcdctl(node, "member list", "3.4.23", _cfg().etcd_endpoints)
    assert "--ca-file" not in node.commands[-1]


def test_a_v3_only_command_speaks_v3_on_etcd_3_4_too():
    # etcd 3.4's etcdctl under ETCDCTL_API=2 answers `snapshot save` with "No help topic for
    # 'snapshot'" (seen on the lab's 3.4.23 in the restore drill).
    node = FakeNode(rules={r"^ETCDCTL_API=3 etcdctl --endpoints \S+ (--cacert \S+ --cert \S+ --key \S+ )?"
                           r"snapshot save /tmp/s.db$": "Snapshot saved at /tmp/s.db\n"})
    for tls in ("false", "true"):
        assert etcd_query.etcdctl(node, "snapshot save /tmp/s.db", "3.4.23", _cfg(etcd_tls=tls).etcd_endpoints,
                                  v3=True).ok, node.commands[-1]
    assert "--cacert /etc/calico/certs/ca.pem" in node.commands[-1]


def test_http_requests_follow_the_client_certificate_on_the_node(tmp_path):
    script = etcd_query.curl_command("10.0.0.1", "/v2/keys/a b?recursive=true", "-s")
    fake_curl = tmp_path / "curl"
    fake_curl.write_text('#!/bin/sh\necho "$@"\n')
    fake_curl.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    plain = subprocess.run(["sh", "-c", script.replace(etcd_tls.CLIENT.cert, str(tmp_path / "absent"))],
                           env=env, capture_output=True, text=True).stdout
    assert plain.strip() == "-s http://10.0.0.1:2379/v2/keys/a b?recursive=true"
    (tmp_path / "client.pem").write_text("x")
    tls = subprocess.run(["sh", "-c", script.replace(etcd_tls.CLIENT.cert, str(tmp_path / "client.pem"))],
                         env=env, capture_output=True, text=True).stdout
    assert re.search(r"--cacert \S+ca.pem --cert \S+client.pem --key \S+client-key.pem "
                     r"https://10.0.0.1:2379/v2/keys/a b\?recursive=true", tls)


# -- the certificate step -------------------------------------------------------------------------
class CertNode(FakeNode):
    """A fake node whose private files (FakeNode.put_private keeps their owners) answer
    sha256sum/stat, and where the etcd user exists (the etcd package made it)."""

    def __init__(self, name: str, ip: str) -> None:
        super().__init__(name, ip, rules={
            r"^getent passwd etcd >/dev/null$": (0, ""),
            r"^sha256sum ": self._state, r"^test -e /etc/calico/certs": self._dirs_present,
            r"^rm -rf /etc/calico/certs": self._remove,
            r"^touch /run/calicolab-(etcd|docker|calico)-restart": (0, "")})

    def _state(self, cmd: str) -> tuple[int, str]:
        path = cmd.split()[1].strip("'")
        if path not in self.files:
            return 1, ""
        digest = hashlib.sha256(self.files[path].encode()).hexdigest()
        return 0, f"{digest}  {path}\n{self.modes[path]} {self.owners.get(path, 'root')}\n"

    def _dirs_present(self, _cmd: str) -> tuple[int, str]:
        return (0 if any(p.startswith(("/etc/calico/certs/", "/etc/etcd/pki/")) for p in self.files) else 1), ""

    def _remove(self, _cmd: str) -> tuple[int, str]:
        for path in [p for p in self.files if p.startswith(("/etc/calico/certs/", "/etc/etcd/pki/"))]:
            del self.files[path]
        return 0, ""


def _contexts(cfg: config.ClusterConfig, nodes: list[CertNode]) -> list[Context]:
    return [Context(cfg, n, cfg.node(n.name), DEBIAN, section=etcd.SECTION) for n in nodes]


@needs_openssl
def test_certificate_step_installs_once_and_keeps_the_keys_private(tmp_path):
    cfg = _cfg(tmp_path, etcd_tls="true")
    nodes = [CertNode("node1", "192.168.223.131"), CertNode("node2", "192.168.223.130")]
    first = tls_step.certificates(_contexts(cfg, nodes))
    assert [c.changed for c in first] == [True, True]
    pki = etcd_tls.pki_folder(cfg)
    for node in nodes:
        assert node.files[etcd_tls.CLIENT.key] == (pki / "client-key.pem").read_text()
        assert node.owners[etcd_tls.SERVER.key] == "etcd" and node.modes[etcd_tls.SERVER.key] == "600"
        assert node.files[etcd_tls.SERVER.ca] == node.files[etcd_tls.CLIENT.ca] == (pki / "ca.pem").read_text()
        assert not any(kind == "put" and path.endswith("-key.pem") for kind, path in node.log)
        assert ("put_private", etcd_tls.SERVER.key) in node.log and ("put_private", etcd_tls.CLIENT.key) in node.log
        assert any("touch /run/calicolab-etcd-restart" in c for c in node.commands)
    second = tls_step.certificates(_contexts(cfg, nodes))
    assert not any(c.changed for c in second), [c.line() for c in second]


@needs_openssl
def test_new_nodes_get_a_new_ca_and_tls_off_removes_the_files(tmp_path):
    cfg = _cfg(tmp_path, etcd_tls="true")
    old = [CertNode("node1", "192.168.223.131"), CertNode("node2", "192.168.223.130")]
    tls_step.certificates(_contexts(cfg, old))
    old_ca = old[0].files[etcd_tls.CLIENT.ca]
    fresh = [CertNode("node1", "192.168.223.131"), CertNode("node2", "192.168.223.130")]
    tls_step.certificates(_contexts(cfg, fresh))
    assert fresh[0].files[etcd_tls.CLIENT.ca] != old_ca  # a new cluster, a new CA
    off = tls_step.certificates(_contexts(_cfg(tmp_path), fresh))
    assert [c.changed for c in off] == [True, True]
    assert not [p for p in fresh[0].files if p.startswith(("/etc/calico/certs/", "/etc/etcd/pki/"))]
    assert not any(c.changed for c in tls_step.certificates(_contexts(_cfg(tmp_path), fresh)))

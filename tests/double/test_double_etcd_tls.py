"""The Calico double over TLS, as Calico 2.6 reads it: https endpoints, ETCD_CA_CERT_FILE,
ETCD_CERT_FILE, ETCD_KEY_FILE (calico-node) and calicoctl.cfg's etcdCACertFile/etcdCertFile/
etcdKeyFile (calicoctl), against a stub etcd that demands a client certificate."""

from __future__ import annotations

import json
import shutil
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from calico_double.agent.config import Config
from calico_double.agent.etcd import EtcdClient, EtcdError, EtcdUnavailable
from calicolab.core import config
from calicolab.stack import etcd_tls
from tests.double.test_double_calicoctl import ctl

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="openssl is not installed (needed to make the test certificates)")


class TlsStub(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/version":
            body = {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}
        elif self.path.startswith("/v2/keys/calico/v1/host"):
            body = {"action": "get", "node": {"key": "/calico/v1/host", "dir": True, "nodes": [
                {"key": "/calico/v1/host/node1", "dir": True, "nodes": []}]}}
        else:
            body = {"action": "get", "node": {"key": "/", "dir": True}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    return etcd_tls.ensure_pki(config.load({"run_dir": str(run)}, environ={})).folder


@pytest.fixture
def tls_etcd(pki: Path) -> Iterator[str]:
    """An https etcd stub on 127.0.0.1 (a SAN of the server certificate) requiring client certs."""
    server = HTTPServer(("127.0.0.1", 0), TlsStub)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.pem", pki / "server-key.pem")
    context.load_verify_locations(pki / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _files(pki: Path) -> dict[str, str]:
    return {"ETCD_CA_CERT_FILE": str(pki / "ca.pem"), "ETCD_CERT_FILE": str(pki / "client.pem"),
            "ETCD_KEY_FILE": str(pki / "client-key.pem")}


# -- calico-node (agent) --------------------------------------------------------------------------
def test_agent_reads_the_tls_variables_of_calico_env(pki: Path) -> None:
    cfg = Config.from_env({"NODENAME": "node1", "ETCD_ENDPOINTS": "https://10.0.0.1:2379", **_files(pki)})
    assert cfg.etcd_endpoints == ["https://10.0.0.1:2379"]
    assert (cfg.etcd_ca_file, cfg.etcd_cert_file, cfg.etcd_key_file) == tuple(_files(pki).values())


def test_agent_talks_tls_with_the_client_certificate(tls_etcd: str, pki: Path) -> None:
    env = _files(pki)
    client = EtcdClient([tls_etcd], env["ETCD_CA_CERT_FILE"], env["ETCD_CERT_FILE"], env["ETCD_KEY_FILE"],
                        timeout=3)
    assert client.wait_until_ready(3)["etcdserver"] == "3.4.23"


def test_agent_without_a_client_certificate_is_turned_away(tls_etcd: str, pki: Path) -> None:
    client = EtcdClient([tls_etcd], str(pki / "ca.pem"), timeout=3)
    with pytest.raises(EtcdUnavailable, match="no etcd endpoint answered"):
        client.version()


def test_agent_checks_the_server_against_the_ca_file(tls_etcd: str, pki: Path, tmp_path: Path) -> None:
    other = etcd_tls.ensure_pki(config.load({"run_dir": str(tmp_path)}, environ={})).folder
    client = EtcdClient([tls_etcd], str(other / "ca.pem"), str(pki / "client.pem"), str(pki / "client-key.pem"),
                        timeout=3)
    with pytest.raises(EtcdUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        client.version()


def test_agent_names_unusable_tls_files(pki: Path) -> None:
    with pytest.raises(EtcdError, match="ETCD_CERT_FILE=/nonexistent/client.pem"):
        EtcdClient(["https://127.0.0.1:2379"], str(pki / "ca.pem"), "/nonexistent/client.pem", "/nonexistent/k")


# -- calicoctl ------------------------------------------------------------------------------------
def test_calicoctl_cfg_carries_the_tls_files_and_wins_over_the_environment(tmp_path: Path) -> None:
    (tmp_path / "calicoctl.cfg").write_text(
        'apiVersion: v1\nkind: calicoApiConfig\nmetadata:\nspec:\n  datastoreType: "etcdv2"\n'
        '  etcdEndpoints: "https://10.0.0.1:2379,https://10.0.0.2:2379"\n'
        '  etcdKeyFile: "/etc/calico/certs/client-key.pem"\n  etcdCertFile: "/etc/calico/certs/client.pem"\n'
        '  etcdCACertFile: "/etc/calico/certs/ca.pem"\n')
    store = ctl.datastore({"ETCD_ENDPOINTS": "http://elsewhere:2379", "ETCD_CA_CERT_FILE": "/x"},
                          tmp_path / "calicoctl.cfg")
    assert store == ctl.Datastore(["https://10.0.0.1:2379", "https://10.0.0.2:2379"], "/etc/calico/certs/ca.pem",
                                  "/etc/calico/certs/client.pem", "/etc/calico/certs/client-key.pem")


def test_calicoctl_environment_when_there_is_no_cfg(tmp_path: Path) -> None:
    env = {"ETCD_ENDPOINTS": "https://10.0.0.1:2379", "ETCD_CA_CERT_FILE": "/c/ca.pem",
           "ETCD_CERT_FILE": "/c/client.pem", "ETCD_KEY_FILE": "/c/key.pem"}
    cfg = tmp_path / "calicoctl.cfg"
    assert ctl.datastore(env, cfg) == ctl.Datastore(["https://10.0.0.1:2379"], "/c/ca.pem", "/c/client.pem",
                                                    "/c/key.pem")
    # ETCD_AUTHORITY/ETCD_SCHEME, the older pair, still make an endpoint.
    assert ctl.datastore({"ETCD_AUTHORITY": "10.0.0.9:2379", "ETCD_SCHEME": "https"}, cfg).endpoints == [
        "https://10.0.0.9:2379"]


def test_calicoctl_never_reads_the_guides_calico_env(tmp_path: Path) -> None:
    # calicoctl v1.6.1: calicoctl.cfg or the environment, else libcalico-go's 127.0.0.1:2379.
    (tmp_path / "calico.env").write_text('ETCD_ENDPOINTS="https://10.0.0.1:2379"\nETCD_CA_FILE="/c/ca.pem"\n')
    assert ctl.datastore({}, tmp_path / "calicoctl.cfg") == ctl.Datastore(["http://127.0.0.1:2379"])


def test_calicoctl_reads_etcd_over_tls(tls_etcd: str, pki: Path) -> None:
    env = _files(pki)
    store = ctl.Datastore([tls_etcd], env["ETCD_CA_CERT_FILE"], env["ETCD_CERT_FILE"], env["ETCD_KEY_FILE"])
    assert [n["metadata"]["name"] for n in ctl.list_nodes(store)] == ["node1"]


def test_calicoctl_over_plain_http_to_a_tls_port_fails_like_calicoctl(tls_etcd: str) -> None:
    store = ctl.Datastore([tls_etcd.replace("https://", "http://")])
    with pytest.raises(ctl.CalicoctlError, match="etcd cluster is unavailable or misconfigured"):
        ctl.etcd_get(store, "/calico/v1/host")


def test_calicoctl_with_a_missing_key_file_says_so(monkeypatch, capsys, pki: Path) -> None:
    store = ctl.Datastore(["https://127.0.0.1:2379"], str(pki / "ca.pem"), str(pki / "client.pem"), "/nonexistent")
    monkeypatch.setattr(ctl, "datastore", lambda *_a, **_kw: store)
    assert ctl.main(["get", "node"]) == 1
    # calicoctl v1.6.1 get.go: a client that cannot be made is `Failed to get resources: ...` on stdout.
    assert capsys.readouterr().out.startswith("Failed to get resources: Failed to create Calico API client")

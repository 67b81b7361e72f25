"""etcd over TLS (setting etcd_tls): the client port speaks only TLS and wants a client
certificate, and Docker's cluster store, calico-node and calicoctl get through with theirs.
Peer traffic (2380) stays plain http. Read-only; runs only on clusters with etcd_tls true.
"""

from __future__ import annotations

import json

import pytest

from calicolab.core import node_commands
from calicolab.core.polling import Timeout, wait_for
from calicolab.stack import etcd_query
from calicolab.stack.etcd_tls import CLIENT, CLIENT_DIR, SERVER
from e2e import expect

CONNECTION_DEADLINE = 15  # Docker's cluster store keeps a watch open on etcd


@pytest.fixture(autouse=True)
def _tls_cluster(cluster):
    if not cluster.etcd_tls:
        pytest.skip("this cluster runs with etcd_tls false: set CALICOLAB_ETCD_TLS=true (or --etcd-tls) "
                    "to check etcd over TLS")


def test_plain_http_to_the_client_port_is_refused(node, spec):
    for ip in (spec.ip, "127.0.0.1"):
        res = node.run(f"curl -s -m 5 -w '\\n%{{http_code}}' http://{ip}:2379/version")
        body, _, code = res.stdout.rpartition("\n")
        expect.true(f"{spec.name}: plain http://{ip}:2379/version", code != "200" and "etcdserver" not in body,
                    "no answer: the client port speaks TLS only", f"HTTP {code} {body.strip()[:80]}",
                    "etcd.conf still lists an http:// client URL (ETCD_LISTEN_CLIENT_URLS)")


def test_tls_without_a_client_certificate_is_rejected(node, spec):
    url = f"https://{spec.ip}:2379/version"
    without = node.run(f"curl -sS -m 5 --cacert {CLIENT.ca} {url}")
    expect.true(f"{spec.name}: {url} with the CA but no client certificate",
                not without.ok and "etcdserver" not in without.stdout, "a refused TLS handshake",
                (without.stdout + without.stderr).strip()[-160:],
                'etcd does not demand client certificates (ETCD_CLIENT_CERT_AUTH="true" missing)')
    with_cert = node.run(f"curl -sS -m 5 --cacert {CLIENT.ca} --cert {CLIENT.cert} --key {CLIENT.key} {url}")
    expect.true(f"{spec.name}: {url} with the client certificate", with_cert.ok and '"etcdserver"' in with_cert.stdout,
                "etcd's version", (with_cert.stdout + with_cert.stderr).strip()[-160:],
                "the server certificate lacks this IP as a SAN, or the node holds another CA")


def test_loopback_client_url_works_over_tls(node, spec, cluster):
    # The guide's fix for `dial tcp 127.0.0.1:4001` needs 127.0.0.1 in the server certificate.
    health = etcd_query.health(node, cluster.versions.etcd, "https://127.0.0.1:2379")
    expect.equal(f"{spec.name}: etcdctl over https://127.0.0.1:2379", health.verdict, "healthy",
                 "127.0.0.1 is not a SAN of the server certificate, or not a client URL")


def test_private_keys_are_readable_by_their_user_only(node, spec):
    for path, owner in ((CLIENT.key, "root"), (SERVER.key, "etcd")):
        seen = node.run(f"stat -c '%a %U' {path}").stdout.strip()
        expect.equal(f"{spec.name}: mode and owner of {path}", seen, f"600 {owner}",
                     "the certificate step did not install the key privately")


def _established_2379(node) -> str:
    return node.run("ss -Htnp state established '( dport = :2379 )'").stdout


def test_docker_cluster_store_reaches_etcd_over_tls(node, spec):
    opts = json.loads(node.read("/etc/docker/daemon.json") or "{}").get("cluster-store-opts")
    expect.equal(f"{spec.name}: cluster-store-opts in daemon.json", opts,
                 {"kv.cacertfile": CLIENT.ca, "kv.certfile": CLIENT.cert, "kv.keyfile": CLIENT.key},
                 "daemon.json was written without the TLS options")
    started = node.run("journalctl -u docker --no-pager -o cat | grep 'Initializing KV' | tail -n 1").stdout.strip()
    expect.true(f"{spec.name}: Docker's last start", "Initializing KV with TLS" in started,
                "Option Initializing KV with TLS", started or "no such log line",
                "libnetwork needs all three kv.* files to use TLS")
    try:
        wait_for(lambda: _established_2379(node), lambda seen: '"dockerd"' in seen,
                 f"{spec.name}: dockerd connected to etcd", timeout=CONNECTION_DEADLINE)
    except Timeout as err:
        expect.fail(f"{spec.name}: dockerd's connection to etcd :2379 (waited {CONNECTION_DEADLINE} s)",
                    "an established connection (the port takes TLS with a client certificate only)",
                    str(err.last).strip()[:200] or "none", "Docker's TLS handshake fails: see `journalctl -u docker`")
    keys = etcd_query.client_request(node, spec.ip, "/v2/keys/docker/network/v1.0/?recursive=true", "-s")
    expect.true(f"{spec.name}: Docker's keys read over TLS", '"key":"/docker/network/v1.0' in keys.stdout,
                "/docker/network/v1.0/... keys", keys.stdout.strip()[:160] or "nothing",
                "Docker never wrote to its cluster store")


def test_calico_node_reaches_etcd_over_tls(node, spec, cluster):
    env = dict(item.split("=", 1) for item in json.loads(
        node.run("docker inspect calico-node --format '{{json .Config.Env}}'").stdout or "[]"))
    want = {"ETCD_ENDPOINTS": cluster.etcd_endpoints, "ETCD_CA_CERT_FILE": CLIENT.ca,
            "ETCD_CERT_FILE": CLIENT.cert, "ETCD_KEY_FILE": CLIENT.key}
    expect.equal(f"{spec.name}: calico-node's etcd settings", {k: env.get(k) for k in want}, want,
                 "calico.env lacks the https endpoints or the TLS files")
    readable = node.run(f"docker exec calico-node sh -c 'test -r {CLIENT.ca} && test -r {CLIENT.cert} "
                        f"&& test -r {CLIENT.key}'")
    expect.true(f"{spec.name}: TLS files inside calico-node", readable.ok, f"{CLIENT_DIR} mounted and readable",
                "missing", f"calico-node.service does not mount {CLIENT_DIR}")
    # The client port speaks TLS only (test_plain_http_to_the_client_port_is_refused), so a
    # registration there was written over TLS; startup.go prints nothing about the connection.
    registered = etcd_query.v2_get(node, spec.ip, f"/calico/v1/host/{spec.name}/metadata")
    expect.true(f"{spec.name}: calico-node's registration read over TLS", registered is not None,
                f"/calico/v1/host/{spec.name}/metadata", "absent", "calico-node never reached etcd")
    startup = node.run("docker logs calico-node 2>&1").stdout
    expect.true(f"{spec.name}: calico-node's startup", "Calico node started successfully" in startup
                and "Unable to access datastore" not in startup, "startup finished (its datastore answered)",
                startup.strip().splitlines()[-3:] or "no output", "calico-node could not use the https "
                "endpoints or the TLS files")


def test_calicoctl_reaches_etcd_over_tls(node, spec, cluster):
    text = node.read("/etc/calico/calicoctl.cfg") or ""
    for line in (f'etcdEndpoints: "{cluster.etcd_endpoints}"', f'etcdCACertFile: "{CLIENT.ca}"',
                 f'etcdCertFile: "{CLIENT.cert}"', f'etcdKeyFile: "{CLIENT.key}"'):
        expect.true(f"{spec.name}: /etc/calico/calicoctl.cfg", line in text, line, text.strip()[-200:] or "no file",
                    "provisioning wrote calicoctl.cfg without the TLS settings")
    res = node.run(node_commands.calicoctl("get node"))
    expect.command_ok(res, "calicoctl cannot reach etcd over TLS (calicoctl.cfg's files)")

"""The etcd TLS certificates on the nodes (setting `etcd_tls`; part of guide section 4).

One cluster step, before etcd starts: make or keep the cluster's CA on the host
(calicolab/stack/etcd_tls.py) and copy the server files to /etc/etcd/pki and the client files to
/etc/calico/certs on every node. With etcd_tls false the folders are removed, so a node
holds the client certificate exactly when its etcd speaks TLS (calicolab/stack/etcd_query.py
relies on that). A change marks the services that read the files for a restart.
"""

from __future__ import annotations

import hashlib
import shlex

from calicolab.core.remote import Node, in_parallel
from calicolab.stack import etcd_tls
from calicolab.stack.etcd_tls import CLIENT, CLIENT_DIR, SERVER, SERVER_DIR, Pki
from provision.context import Context
from provision.steps import Change, ensure_file

# Restart markers the etcd, docker and calico steps pick up.
ETCD_RESTART = "/run/calicolab-etcd-restart"
DOCKER_RESTART = "/run/calicolab-docker-restart"
CALICO_RESTART = "/run/calicolab-calico-restart"
ETCD_USER = "etcd"


def certificates(contexts: list[Context]) -> list[Change]:
    cfg = contexts[0].cfg
    nodes = [c.node for c in contexts]
    if not cfg.etcd_tls:
        removed = in_parallel(nodes, _remove)
        return [c.change("etcd TLS certificates", removed[c.node.name], "none: etcd clients use plain http")
                for c in contexts]
    pki = _cluster_pki(contexts)
    changed = in_parallel(nodes, lambda n: _install(n, pki))
    return [c.change("etcd TLS certificates", changed[c.node.name],
                     f"{SERVER_DIR}, {CLIENT_DIR} (CA {pki.ca_fingerprint[:11]})") for c in contexts]


def _cluster_pki(contexts: list[Context]) -> Pki:
    """Keep the host's CA while the nodes hold it; new nodes (a new cluster) get a new CA."""
    cfg = contexts[0].cfg
    pki = etcd_tls.ensure_pki(cfg)
    ca = pki.text("ca.pem")
    if any(c.node.read(CLIENT.ca) == ca for c in contexts):
        return pki
    return etcd_tls.ensure_pki(cfg, fresh=True)


def _install(node: Node, pki: Pki) -> bool:
    owner = ETCD_USER if node.run(f"getent passwd {ETCD_USER} >/dev/null").ok else "root"
    server = _put_pair(node, pki, SERVER, "server", owner)
    client = _put_pair(node, pki, CLIENT, "client", "root")
    if server:
        node.run(f"touch {ETCD_RESTART}")
    if client:
        node.run(f"touch {DOCKER_RESTART} {CALICO_RESTART}")
    return server or client


def _put_pair(node: Node, pki: Pki, files: etcd_tls.TlsFiles, name: str, owner: str) -> bool:
    changed = ensure_file(node, files.ca, pki.text("ca.pem"))
    changed |= ensure_file(node, files.cert, pki.text(f"{name}.pem"))
    key = pki.text(f"{name}-key.pem")
    if _private_state(node, files.key) != (hashlib.sha256(key.encode()).hexdigest(), "600", owner):
        node.put_private(key, files.key, owner)
        changed = True
    return changed


def _private_state(node: Node, path: str) -> tuple[str, str, str] | None:
    """A key's sha256, mode and owner, compared without reading the key off the node."""
    quoted = shlex.quote(path)
    res = node.run(f"sha256sum {quoted} && stat -c '%a %U' {quoted}")
    lines = res.stdout.split("\n") if res.ok else []
    if len(lines) < 2 or len(lines[1].split()) != 2:
        return None
    mode, user = lines[1].split()
    return lines[0].split()[0], mode, user


def _remove(node: Node) -> bool:
    present = node.run(f"test -e {CLIENT_DIR} -o -e {SERVER_DIR}").ok
    if present:
        node.run(f"rm -rf {CLIENT_DIR} {SERVER_DIR} && touch {ETCD_RESTART} {DOCKER_RESTART} {CALICO_RESTART}",
                 check=True)
    return present

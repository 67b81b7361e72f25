"""etcd over TLS (setting `etcd_tls`): where the certificates live, and a per-cluster CA.

The host makes the CA and two certificates with openssl in the run folder (`<run>/pki`):
a server certificate for etcd's client port (every node IP, 127.0.0.1 and localhost as
SANs, so one certificate serves both members and the guide's loopback URL) and one client
certificate for etcdctl, Docker's cluster store, calico-node and calicoctl. Peer traffic
(2380) stays plain http: the brief is the client side. Keys are 0600 and never printed.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError

DAYS = 30  # a lab cluster lives minutes; a short life keeps forgotten keys harmless


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    cert: str
    key: str


# Where the files land on the nodes. The client side sits under /etc/calico, which the
# calicoctl double's wrapper already mounts and calico-node.service mounts read-only.
CLIENT_DIR = "/etc/calico/certs"
CLIENT = TlsFiles(f"{CLIENT_DIR}/ca.pem", f"{CLIENT_DIR}/client.pem", f"{CLIENT_DIR}/client-key.pem")
SERVER_DIR = "/etc/etcd/pki"
SERVER = TlsFiles(f"{SERVER_DIR}/ca.pem", f"{SERVER_DIR}/server.pem", f"{SERVER_DIR}/server-key.pem")

# Host file names inside <run>/pki.
HOST_FILES = ("ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem")
INPUTS = "inputs.json"

_lock = threading.Lock()  # provisioning runs node steps in threads; one CA per cluster


@dataclass(frozen=True)
class Pki:
    folder: Path

    def text(self, name: str) -> str:
        return (self.folder / name).read_text()

    @property
    def ca_fingerprint(self) -> str:
        return _openssl(["x509", "-in", str(self.folder / "ca.pem"), "-noout", "-fingerprint", "-sha256"],
                        self.folder).split("=", 1)[-1].strip()


def pki_folder(cfg: ClusterConfig) -> Path:
    return cfg.run_path / "pki"


def server_sans(cfg: ClusterConfig) -> list[str]:
    return [f"IP:{n.ip}" for n in cfg.nodes] + ["IP:127.0.0.1", "DNS:localhost"] + [
        f"DNS:{n.name}" for n in cfg.nodes]


def ensure_pki(cfg: ClusterConfig, fresh: bool = False) -> Pki:
    """The cluster's CA and certificates: kept while they match the nodes and have a day left,
    else (or when fresh) made anew."""
    folder = pki_folder(cfg)
    with _lock:
        inputs = {"sans": server_sans(cfg), "prefix": cfg.prefix}
        if fresh or not _usable(folder, inputs):
            _generate(folder, cfg, inputs)
    return Pki(folder)


def _usable(folder: Path, inputs: dict) -> bool:
    if not all((folder / name).is_file() for name in (*HOST_FILES, INPUTS)):
        return False
    try:
        if json.loads((folder / INPUTS).read_text()) != inputs:
            return False
    except (OSError, ValueError):
        return False
    return all(subprocess.run(["openssl", "x509", "-in", str(folder / cert), "-noout", "-checkend", "86400"],
                              capture_output=True).returncode == 0
               for cert in ("ca.pem", "server.pem", "client.pem"))


def _generate(folder: Path, cfg: ClusterConfig, inputs: dict) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        for name in (*HOST_FILES, INPUTS):
            (folder / name).unlink(missing_ok=True)
    except OSError as err:
        raise UserError(f"cannot write the etcd certificates into {folder} ({err.strerror}): "
                        "pick another --run-dir") from None
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(["req", "-x509", *ec, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", str(DAYS),
              "-subj", f"/CN=calicolab etcd CA ({cfg.prefix})",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], folder)
    # The server certificate also carries clientAuth: etcd's gRPC gateway dials itself with it.
    _sign(folder, "server", "etcd server", ec, [
        f"subjectAltName={','.join(inputs['sans'])}",
        "extendedKeyUsage=serverAuth,clientAuth"])
    _sign(folder, "client", "calicolab etcd client", ec, ["extendedKeyUsage=clientAuth"])
    for name in HOST_FILES:
        (folder / name).chmod(0o600 if name.endswith("-key.pem") else 0o644)
    (folder / INPUTS).write_text(json.dumps(inputs, indent=2) + "\n")


def _sign(folder: Path, name: str, cn: str, ec: list[str], extensions: list[str]) -> None:
    ext = folder / f"{name}.ext"
    ext.write_text("\n".join(["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
                              *extensions]) + "\n")
    try:
        _openssl(["req", "-new", *ec, "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
                  "-subj", f"/CN={cn}"], folder)
        _openssl(["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                  "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(DAYS),
                  "-extfile", ext.name, "-out", f"{name}.pem"], folder)
    finally:
        for leftover in (ext, folder / f"{name}.csr"):
            leftover.unlink(missing_ok=True)


def _openssl(args: list[str], cwd: Path) -> str:
    """Run openssl quietly; on failure say which step failed (its stderr holds no key)."""
    try:
        res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise UserError("openssl is missing on this machine: install it (apt-get install openssl) "
                        "or run with etcd_tls false") from None
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"openssl {args[0]} failed while making the etcd certificates: {last}")
    return res.stdout

"""What a run downloads from upstream (etcd release archives, calicoctl, the calico/node and
busybox images) and how each is verified before anything is installed.

An artifact is verified against, in this order: a checksum published upstream and pinned here
(with where it was published), or the project's lock file (`artifacts.lock`, committed by the
user: trust on first use, as go.sum and Terraform's lock file work). The lock is written once on
a trusted machine by `invoke lock --record` (calicolab/stack/upstream.py record_lock, which
fetches and resolves everything a run uses); without strict mode, what has neither is also
recorded on its first download, said in one loud line, and verified on every later run. In
strict mode (setting strict_artifacts, the nightly's) it is refused instead, in preflight before
anything is built. A mismatch is one line naming the artifact, the expected and the seen hash,
and nothing is installed.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from calicolab.core.errors import UserError

CALICOCTL = "/usr/local/bin/calicoctl"
GITHUB = "https://github.com"
LOCK_VERSION = 1


@dataclass(frozen=True)
class Pin:
    sha256: str
    published: str  # where the value was published (checked against the release's own file where one exists)


# sha256 of etcd-v<version>-linux-amd64.tar.gz.
ETCD_PINS: dict[str, Pin] = {
    "3.3.11": Pin("ef794bc8eb73e34c571768fe781b842d6e52c48a189418cd8bdac79985d06070",
                  "andrewrothstein/ansible-etcd defaults/main.yml (etcd 3.3 published no SHA256SUMS)"),
    "3.4.23": Pin("f0c53075564c1b98f5e6b1c009dd5c55b911fae1fe4993913246e8d2c8976651",
                  "the release's SHA256SUMS, as carried by andrewrothstein/ansible-etcd and kubesphere/kubekey "
                  "version/components.json"),
    "3.4.27": Pin("a32d21e006252dbc3405b0645ba8468021ed41376974b573285927bf39b39eb9",
                  "openstack/devstack stackrc; openstack/kolla sources.py"),
    "3.5.16": Pin("b414b27a5ad05f7cb01395c447c85d3227e3fb1c176e51757a283b817f645ccc",
                  "kubernetes-sigs/kubespray roles/kubespray_defaults/vars/main/checksums.yml (etcd's SHA256SUMS)"),
    "3.5.30": Pin("a495115162845640be08c6cda069ff961260dbced53207c5a83b1b006ff2ea8e",
                  "kubernetes-sigs/kubespray roles/kubespray_defaults/vars/main/checksums.yml (etcd's SHA256SUMS)"),
}
# calicoctl v1.6.1 was released without a checksum file, and the calico/node and busybox images
# have no published digest: those are locked on first use.
CALICOCTL_PINS: dict[str, Pin] = {}


@dataclass(frozen=True)
class Artifact:
    """One thing a run downloads: a release file (kind file) or an image (kind image)."""

    key: str   # its name in the lock, e.g. "calicoctl v1.6.1", "image calico/node:v2.6.1"
    kind: str  # file | image
    source: str  # the URL, or the image reference name:tag
    pin: Pin | None = None


def etcd_archive(version: str, base: str = "") -> Artifact:
    name = f"etcd-v{version}-linux-amd64.tar.gz"
    url = f"{(base or GITHUB).rstrip('/')}/etcd-io/etcd/releases/download/v{version}/{name}"
    return Artifact(f"etcd {version}", "file", url, ETCD_PINS.get(version))


def calicoctl_binary(version: str, base: str = "") -> Artifact:
    tag = version if version.startswith("v") else f"v{version}"
    url = f"{(base or GITHUB).rstrip('/')}/projectcalico/calicoctl/releases/download/{tag}/calicoctl"
    return Artifact(f"calicoctl {tag}", "file", url, CALICOCTL_PINS.get(tag))


def image(reference: str) -> Artifact:
    return Artifact(f"image {reference}", "image", reference)


# ---- the lock file ----------------------------------------------------------------------

@dataclass
class Lock:
    """The lock file: what was downloaded once and must be the same every later time."""

    path: Path
    entries: dict[str, dict[str, str]]

    @classmethod
    def load(cls, path: Path) -> Lock:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path, {})
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"the lock file {path} cannot be read ({err}): restore it from git, or remove it "
                            "to lock every artifact again on first use") from None
        if not isinstance(data, dict) or data.get("version") != LOCK_VERSION or not isinstance(
                data.get("artifacts"), dict):
            raise UserError(f"{path} is not a lock file of this project (version {LOCK_VERSION}): restore it "
                            "from git, or remove it to lock every artifact again")
        return cls(path, data["artifacts"])

    def expected(self, artifact: Artifact) -> tuple[str, str] | None:
        """(hash, where it comes from) the artifact must have, or None: not known yet."""
        if artifact.pin:
            return artifact.pin.sha256, f"pinned, published in {artifact.pin.published}"
        entry = self.entries.get(artifact.key)
        if entry:
            return entry["sha256" if artifact.kind == "file" else "digest"], f"locked in {self.path.name}"
        return None

    def record(self, artifact: Artifact, value: str, save: bool = True) -> None:
        field = "sha256" if artifact.kind == "file" else "digest"
        self.entries[artifact.key] = {"kind": artifact.kind, "source": artifact.source, field: value,
                                      "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if save:
            self.save()

    def forget(self, key: str) -> bool:
        found = self.entries.pop(key, None) is not None
        if found:
            self.save()
        return found

    def save(self) -> None:
        body = {"version": LOCK_VERSION, "artifacts": dict(sorted(self.entries.items()))}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=2) + "\n")
        tmp.replace(self.path)


def refuse_unverifiable(artifact: Artifact, lock: Lock, strict: bool) -> None:
    """Strict mode: an artifact neither pinned nor locked is not downloaded at all."""
    if strict and lock.expected(artifact) is None:
        raise UserError(f"{artifact.key} ({artifact.source}) is neither pinned nor locked, and strict_artifacts "
                        f"is on: run `invoke lock --record` on a trusted machine and commit {lock.path.name}")


def mismatch(artifact: Artifact, expected: str, where: str, seen: str) -> UserError:
    hint = (f"; if the new one is the one you trust, `invoke lock --forget '{artifact.key}'` and run again"
            if where.startswith("locked") else "")
    return UserError(f"{artifact.key} from {artifact.source} does not match: expected {expected} ({where}), "
                     f"got {seen}; nothing was installed{hint}")


def check(artifact: Artifact, lock: Lock, strict: bool, seen: str, say=print) -> str:
    """Verify a downloaded hash (or image digest) against the pin or the lock; record it on
    first use. Returns how it was verified."""
    want = lock.expected(artifact)
    if want is None:
        refuse_unverifiable(artifact, lock, strict)
        lock.record(artifact, seen)
        say(f"!!! {artifact.key}: first use, recorded {seen} in {lock.path} (commit it; later runs verify "
            "against it)")
        return f"recorded on first use ({seen[:19]}...)"
    expected, where = want
    if seen != expected:
        raise mismatch(artifact, expected, where, seen)
    return f"verified, {where}"


# ---- commands run on a node (pure) --------------------------------------------------------

def _curl(proxy: dict[str, str] | None) -> str:
    # curl reads the proxy from these variables; `env` sets them for this command only.
    if not proxy:
        return "curl"
    return "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(proxy.items())) + " curl"


def fetch_command(url: str, path: str, proxy: dict[str, str] | None = None) -> str:
    """Download to path and print its sha256 (the caller verifies before installing)."""
    return (f"{_curl(proxy)} -fsSL --retry 3 -o {shlex.quote(path)} {shlex.quote(url)} && "
            f"sha256sum {shlex.quote(path)} | cut -d' ' -f1")


def fetch_and_verify(url: str, sha256: str, path: str, proxy: dict[str, str] | None = None) -> str:
    """One command: download, then fail unless the sha256 matches (the file is removed then)."""
    return (f"{_curl(proxy)} -fsSL --retry 3 -o {shlex.quote(path)} {shlex.quote(url)} && "
            f"{{ echo {shlex.quote(f'{sha256}  {path}')} | sha256sum -c --quiet - || "
            f"{{ rm -f {shlex.quote(path)}; exit 1; }}; }}")

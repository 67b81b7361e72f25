"""Release files downloaded from upstream (etcd, calicoctl): where they come from and the
sha256 each must have. A version without a pinned checksum is refused, never fetched
unchecked; the refusal happens in preflight, before any box or node exists.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from calicolab.core.errors import UserError

CALICOCTL = "/usr/local/bin/calicoctl"

# sha256 of the upstream release files, as published with each release. A version missing
# here is refused rather than installed unchecked.
#   3.5.16: kubernetes-sigs/kubespray roles/kubespray_defaults/vars/main/checksums.yml
#           (etcd_binary_checksums, amd64), which mirrors etcd's SHA256SUMS.
#   3.3.25, 3.4.23: no published value found while writing this; add one after checking the
#           release's SHA256SUMS (https://github.com/etcd-io/etcd/releases/tag/v<version>).
ETCD_SHA256: dict[str, str] = {
    "3.5.16": "b414b27a5ad05f7cb01395c447c85d3227e3fb1c176e51757a283b817f645ccc",
}
#   v1.6.1: projectcalico/calicoctl published no checksum file with this release, and no
#           verified value was found; add one here once checked against a trusted copy.
CALICOCTL_SHA256: dict[str, str] = {}


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str
    path: str        # where the file lands on the node



def etcd_download(version: str) -> Download:
    sha = ETCD_SHA256.get(version)
    if not sha:
        pinned = ", ".join(sorted(ETCD_SHA256)) or "none"
        raise UserError(f"etcd {version} from upstream has no pinned sha256 (pinned: {pinned}): add it "
                        "to ETCD_SHA256 in calicolab/stack/downloads.py from the release's SHA256SUMS, or pick a "
                        "pinned version")
    name = f"etcd-v{version}-linux-amd64.tar.gz"
    return Download(f"https://github.com/etcd-io/etcd/releases/download/v{version}/{name}", sha,
                    f"/tmp/{name}")


def calicoctl_download(version: str) -> Download:
    tag = version if version.startswith("v") else f"v{version}"
    sha = CALICOCTL_SHA256.get(tag)
    if not sha:
        raise UserError(f"calicoctl {tag} has no pinned sha256, so it is not downloaded unchecked: add "
                        "the verified value to CALICOCTL_SHA256 in calicolab/stack/downloads.py, or use the Calico "
                        "double (calico_source: double)")
    return Download(f"https://github.com/projectcalico/calicoctl/releases/download/{tag}/calicoctl", sha,
                    f"{CALICOCTL}.download")


def fetch_and_verify(dl: Download) -> str:
    """One command: download, then fail unless the sha256 matches."""
    return (f"curl -fsSL --retry 3 -o {shlex.quote(dl.path)} {shlex.quote(dl.url)} && "
            f"echo {shlex.quote(f'{dl.sha256}  {dl.path}')} | sha256sum -c --quiet -")


# ---- command sequences (pure) -----------------------------------------------------------

"""Getting upstream artifacts onto a node, verified before anything is installed: release files
by sha256, images by digest (calicolab/stack/downloads.py says against what: a pin, the lock,
or first use). Used by section 6 (calico/node, calicoctl), 7 (busybox) and the CentOS installs
(etcd archives)."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable

from calicolab.core.errors import UserError
from calicolab.core.remote import Node
from calicolab.stack import downloads

# Both nodes provision at once and may lock the same artifact: one verdict at a time.
_VERDICT = threading.Lock()


def file(node: Node, artifact: downloads.Artifact, path: str, lock: downloads.Lock, strict: bool,
         say: Callable[[str], None] = print, proxy: dict[str, str] | None = None) -> str:
    """Download artifact to path on node and verify it; on a mismatch the file is removed and
    nothing is installed. Returns how it was verified."""
    downloads.refuse_unverifiable(artifact, lock, strict)
    res = node.run(downloads.fetch_command(artifact.source, path, proxy), timeout=600)
    lines = res.stdout.split()
    if not res.ok or not lines or len(lines[-1]) != 64:
        node.run(f"rm -f {shlex.quote(path)}")
        raise UserError(f"{node.name}: download of {artifact.key} from {artifact.source} failed: "
                        f"{(res.stderr or res.stdout).strip()[-200:] or f'exit {res.rc}'}")
    try:
        with _VERDICT:
            return downloads.check(artifact, lock, strict, lines[-1], say)
    except UserError:
        node.run(f"rm -f {shlex.quote(path)}")
        raise


def image(node: Node, artifact: downloads.Artifact, lock: downloads.Lock, strict: bool,
          say: Callable[[str], None] = print) -> str:
    """Pull an image by the digest its lock holds (then tag it name:tag), or by tag on first use
    and record its digest. Docker itself checks the content against a digest it pulls by."""
    reference = artifact.source
    name = reference.rsplit(":", 1)[0]
    with _VERDICT:
        want = lock.expected(artifact)
    if want is None:
        downloads.refuse_unverifiable(artifact, lock, strict)
        _pull(node, reference)
        digest = _repo_digest(node, reference, name)
        with _VERDICT:
            return downloads.check(artifact, lock, strict, digest, say) + ", pulled by tag"
    digest, where = want
    _pull(node, f"{name}@{digest}")
    node.run(f"docker tag {shlex.quote(f'{name}@{digest}')} {shlex.quote(reference)}", check=True)
    return f"pulled by digest {digest[:19]}..., {where}"


def _pull(node: Node, reference: str) -> None:
    res = node.run(f"docker pull {shlex.quote(reference)}", timeout=900)
    if not res.ok:
        raise UserError(f"{node.name}: `docker pull {reference}` failed "
                        f"({(res.stderr or res.stdout).strip()[-160:]}): check upstream.registry_mirror and "
                        "the image names, or use the double with --calico-source double")


def _repo_digest(node: Node, reference: str, name: str) -> str:
    res = node.run(f"docker image inspect -f '{{{{range .RepoDigests}}}}{{{{.}}}} {{{{end}}}}' "
                   f"{shlex.quote(reference)}")
    for entry in res.stdout.split():
        repo, _, digest = entry.partition("@")
        if digest.startswith("sha256:") and (repo == name or repo.endswith("/" + name) or name.endswith(repo)):
            return digest
    raise UserError(f"{node.name}: {reference} has no repo digest after the pull ({res.stdout.strip() or 'none'})")

"""Resolving upstream artifacts from the runner, with the standard library only: an image's
digest from a registry (the Docker Registry HTTP API v2) and a release file's sha256 from its
URL. `invoke lock --record` uses it on a trusted machine to write artifacts.lock.

The digest is the one `docker pull <name>:<tag>` records as the image's RepoDigest: the registry's
Docker-Content-Digest for the manifest it serves for the tag when asked with Docker's own Accept
list (a manifest list or OCI index for a multi-platform image, else the image manifest).
Registries that need a token say so in a 401's WWW-Authenticate header (Docker Hub: Bearer
realm="https://auth.docker.io/token",service=...,scope=...): the token is fetched from that realm
anonymously and the request repeated, as Docker's client does (distribution's token spec).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from calicolab.core.errors import UserError

DOCKER_HUB = "https://registry-1.docker.io"
HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")
# What Docker's client accepts when it pulls by tag (moby distribution/pull_v2.go): the digest of
# whatever of these the registry serves is the one the pull records.
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TIMEOUT = 30  # seconds per request: an unreachable host is told, not waited for
CHUNK = 1 << 16


@dataclass(frozen=True)
class ImageRef:
    registry: str  # scheme://host[:port] the client talks to
    repository: str  # e.g. library/busybox
    tag: str

    @property
    def manifest_url(self) -> str:
        return f"{self.registry}/v2/{self.repository}/manifests/{self.tag}"


def parse_image(reference: str, registry_mirror: str = "", insecure_registry: str = "") -> ImageRef:
    """Docker's rules: a first part with a dot or a port, or localhost, names the registry; else
    Docker Hub, where a one-part name lives under library/. A registry mirror (daemon.json
    registry-mirrors) serves Docker Hub's names only, as Docker uses it."""
    name, tag = reference, "latest"
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = reference.rsplit(":", 1)
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost") and first not in HUB_NAMES:
        scheme = "http" if first == insecure_registry else "https"
        return ImageRef(f"{scheme}://{first}", rest, tag)
    if sep and first in HUB_NAMES:
        name = rest
    repository = name if "/" in name else f"library/{name}"
    registry = (registry_mirror or DOCKER_HUB).rstrip("/")
    if insecure_registry and registry == f"https://{insecure_registry}":
        registry = f"http://{insecure_registry}"
    return ImageRef(registry, repository, tag)


def _bypass(host: str, no_proxy: str) -> bool:
    host = host.split(":", 1)[0].lower()
    for entry in (h.strip().lower().lstrip(".") for h in no_proxy.split(",")):
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


@dataclass(frozen=True)
class Client:
    """HTTP through the configured proxy (upstream.http_proxy/https_proxy with no_proxy); with
    none configured, urllib's own reading of the environment's http(s)_proxy/no_proxy."""

    proxy: dict[str, str] | None = None

    def _opener(self, url: str) -> urllib.request.OpenerDirector:
        if not self.proxy:
            return urllib.request.build_opener()  # ProxyHandler() reads the environment
        host = urllib.parse.urlsplit(url).netloc
        if _bypass(host, self.proxy.get("no_proxy", "")):
            return urllib.request.build_opener(urllib.request.ProxyHandler({}))
        chosen = {k.split("_", 1)[0]: v for k, v in self.proxy.items() if k in ("http_proxy", "https_proxy") and v}
        return urllib.request.build_opener(urllib.request.ProxyHandler(chosen))

    def open(self, url: str, method: str = "GET", headers: dict[str, str] | None = None):
        request = urllib.request.Request(url, method=method, headers=headers or {})
        return self._opener(url).open(request, timeout=TIMEOUT)


def _why(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}".strip()
    if isinstance(err, urllib.error.URLError):
        reason = err.reason
        return str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)
    if isinstance(err, (socket.timeout, TimeoutError)):
        return f"no answer within {TIMEOUT} s"
    return str(err) or err.__class__.__name__


NET_ERRORS = (urllib.error.URLError, OSError, ssl.SSLError, ValueError)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {realm, service, scope})."""
    scheme, _, params = header.strip().partition(" ")
    found = dict(re.findall(r'(\w+)="([^"]*)"', params))
    return scheme.lower(), found


def _token(client: Client, challenge: str, what: str) -> str:
    scheme, params = parse_challenge(challenge)
    if scheme != "bearer" or not params.get("realm"):
        raise UserError(f"{what}: the registry asks for {scheme or 'unknown'} authentication, which an anonymous "
                        "pull cannot give: point upstream.calico_node_image/busybox_image at a registry that "
                        "allows anonymous pulls")
    query = urllib.parse.urlencode({k: v for k, v in params.items() if k in ("service", "scope")})
    url = params["realm"] + ("&" if "?" in params["realm"] else "?") + query
    try:
        with client.open(url) as answer:
            body = json.loads(answer.read().decode() or "{}")
    except urllib.error.HTTPError as err:
        raise UserError(f"{what}: the token service {params['realm']} refused ({_why(err)})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{what}: the token service {params['realm']} did not answer JSON") from None
    except NET_ERRORS as err:
        raise UserError(f"{what}: the token service {params['realm']} cannot be reached ({_why(err)}): check "
                        "the network or http(s)_proxy") from None
    token = body.get("token") or body.get("access_token")
    if not token:
        raise UserError(f"{what}: the token service {params['realm']} gave no token")
    return str(token)


def image_digest(ref: ImageRef, client: Client | None = None) -> str:
    """The digest a pull of ref by tag records (see the module's note)."""
    client = client or Client()
    what = f"{ref.repository}:{ref.tag} at {ref.registry}"
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    for method in ("HEAD", "GET"):
        try:
            answer = _manifest(client, ref, method, headers, what)
        except _NoDigest:
            continue
        return answer
    raise UserError(f"{what}: the registry gave no Docker-Content-Digest for the manifest")


class _NoDigest(Exception):
    pass


def _manifest(client: Client, ref: ImageRef, method: str, headers: dict[str, str], what: str) -> str:
    auth: dict[str, str] = {}
    for attempt in range(2):
        try:
            with client.open(ref.manifest_url, method, {**headers, **auth}) as answer:
                digest = answer.headers.get("Docker-Content-Digest", "")
                body = answer.read() if method == "GET" else b""
                kind = answer.headers.get("Content-Type", "").split(";")[0].strip()
        except urllib.error.HTTPError as err:
            challenge = err.headers.get("WWW-Authenticate", "") if err.headers else ""
            if err.code == 401 and challenge and attempt == 0:
                auth = {"Authorization": f"Bearer {_token(client, challenge, what)}"}
                continue
            if err.code == 404:
                raise UserError(f"{what}: no such image or tag (HTTP 404): check the image name and tag") from None
            raise UserError(f"{what}: the registry refused ({_why(err)})") from None
        except NET_ERRORS as err:
            raise UserError(f"registry {ref.registry} cannot be reached ({_why(err)}): check the network, "
                            "upstream.registry_mirror or http(s)_proxy") from None
        if method == "GET" and kind != SCHEMA1:
            # The digest of a manifest is the sha256 of its bytes (distribution's spec); a registry
            # that says otherwise is not trusted.
            seen = "sha256:" + hashlib.sha256(body).hexdigest()
            if digest and digest != seen:
                raise UserError(f"{what}: the registry's Docker-Content-Digest {digest} is not the sha256 of the "
                                f"manifest it served ({seen})")
            digest = digest or seen
        if not DIGEST.match(digest):
            raise _NoDigest
        return digest
    raise UserError(f"{what}: the registry refused the token it issued (HTTP 401)")


def file_sha256(url: str, client: Client | None = None) -> str:
    """Download url (following redirects, as GitHub's release links need) and hash it."""
    client = client or Client()
    digest = hashlib.sha256()
    try:
        with client.open(url) as answer:
            while chunk := answer.read(CHUNK):
                digest.update(chunk)
    except urllib.error.HTTPError as err:
        raise UserError(f"{url}: {_why(err)}: check upstream.download_base and the version") from None
    except NET_ERRORS as err:
        raise UserError(f"{url} cannot be reached ({_why(err)}): check the network, upstream.download_base "
                        "or http(s)_proxy") from None
    return digest.hexdigest()

"""A registry and a file server on localhost (http.server in a thread) for tests of the lock and
of preflight: the registry answers the Docker Registry HTTP API v2 as Docker Hub does, with a
Bearer challenge on /v2/ and on manifests (WWW-Authenticate realm pointing at its own /token),
the manifest's sha256 in Docker-Content-Digest, and a 404 for a manifest type the client does not
accept. It also acts as a forward proxy: a request with an absolute URL is served from its own
tables and counted in `proxied`."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Served:
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)  # (repo, tag) -> (type, body)
    files: dict[str, bytes] = field(default_factory=dict)  # path -> body
    bearer: bool = True  # False: no auth at all (a local registry)
    tokens_issued: list[str] = field(default_factory=list)  # the scopes asked for
    proxied: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # "METHOD path"


def _handler(served: Served, base: list[str]):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args) -> None:  # quiet
            pass

        def _send(self, code: int, headers: dict[str, str], body: bytes = b"") -> None:
            self.send_response(code)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _challenge(self, scope: str = "") -> None:
            extra = f',scope="{scope}"' if scope else ""
            self._send(401, {API_HEADER[0]: API_HEADER[1], "Content-Type": "application/json",
                             "WWW-Authenticate": f'Bearer realm="{base[0]}/token",service="fake-registry"{extra}'},
                       b'{"errors":[{"code":"UNAUTHORIZED"}]}')

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path
            if path.startswith("http://"):  # a forward proxy request
                served.proxied.append(path)
                path = urllib.parse.urlsplit(path).path or "/"
            served.seen.append(f"{self.command} {path}")
            parsed = urllib.parse.urlsplit(path)
            if parsed.path == "/token":
                query = dict(urllib.parse.parse_qsl(parsed.query))
                served.tokens_issued.append(query.get("scope", ""))
                body = json.dumps({"token": f"t:{query.get('scope', '')}"}).encode()
                return self._send(200, {"Content-Type": "application/json"}, body)
            if parsed.path == "/v2/":
                if served.bearer:
                    return self._challenge()
                return self._send(200, {API_HEADER[0]: API_HEADER[1]}, b"{}")
            if parsed.path.startswith("/v2/") and "/manifests/" in parsed.path:
                repo, _, tag = parsed.path[4:].partition("/manifests/")
                scope = f"repository:{repo}:pull"
                if served.bearer and self.headers.get("Authorization") != f"Bearer t:{scope}":
                    return self._challenge(scope)
                found = served.manifests.get((repo, tag))
                accepted = [a.strip() for a in self.headers.get("Accept", "").split(",")]
                if found is None or found[0] not in accepted:
                    return self._send(404, {API_HEADER[0]: API_HEADER[1]}, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                kind, body = found
                return self._send(200, {API_HEADER[0]: API_HEADER[1], "Content-Type": kind,
                                        "Docker-Content-Digest": f"sha256:{sha256(body)}"}, body)
            if parsed.path in served.files:
                return self._send(200, {"Content-Type": "application/octet-stream"}, served.files[parsed.path])
            return self._send(404, {"Content-Type": "text/plain"}, b"not found")

        do_HEAD = do_GET  # noqa: N815

    return Handler


@contextmanager
def serving(served: Served) -> Iterator[str]:
    """Yields the server's base URL (http://127.0.0.1:<port>)."""
    base: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served, base))
    base.append(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def manifest(layer: bytes) -> bytes:
    """A schema 2 image manifest whose bytes (and so digest) depend on layer."""
    return json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                       "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                                  "digest": f"sha256:{sha256(layer + b'config')}"},
                       "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                   "size": len(layer), "digest": f"sha256:{sha256(layer)}"}]}, indent=3).encode()


def index(*manifests: bytes) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": MANIFEST, "size": len(m), "digest": f"sha256:{sha256(m)}",
         "platform": {"architecture": "amd64", "os": "linux"}} for m in manifests]}).encode()

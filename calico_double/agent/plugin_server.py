"""Docker's remote plugin protocol: JSON POSTs over HTTP/1.1 on a unix socket.

Docker discovers plugins by socket name in /run/docker/plugins (calico.sock ->
`--driver calico`), calls /Plugin.Activate, then /<Api>.<Method>. Errors are answered
with {"Err": "..."}, which Docker shows to the user.
"""

from __future__ import annotations

import json
import logging
import os
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"

Handler = Callable[[dict], dict]


class PluginError(Exception):
    """A request the driver refuses; the message goes back to Docker as {"Err": ...}."""


def dispatch(routes: dict[str, Handler], path: str, body: bytes) -> tuple[int, dict]:
    """Route one request; separate from HTTP so it is testable without sockets."""
    handler = routes.get(path)
    if handler is None:
        return 404, {"Err": f"unknown plugin endpoint {path}"}
    try:
        request = json.loads(body) if body.strip() else {}
        if request is None:
            request = {}
        if not isinstance(request, dict):
            raise PluginError("request body must be a JSON object")
    except ValueError as exc:
        return 400, {"Err": f"invalid JSON: {exc}"}
    except PluginError as exc:
        return 400, {"Err": str(exc)}
    try:
        return 200, handler(request)
    except PluginError as exc:
        log.error("%s failed: %s", path.lstrip("/"), exc)
        return 500, {"Err": str(exc)}
    except Exception as exc:
        log.exception("%s crashed", path.lstrip("/"))
        return 500, {"Err": f"{type(exc).__name__}: {exc}"}


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Docker reuses connections
    server: _UnixHTTPServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload = dispatch(self.server.routes, self.path, body)
        log.debug("%s %s -> %s %s", self.server.plugin_name, self.path, status, payload)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def address_string(self) -> str:  # unix sockets have no peer address
        return self.server.plugin_name

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s: " + format, self.server.plugin_name, *args)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, routes: dict[str, Handler], plugin_name: str) -> None:
        self.routes = routes
        self.plugin_name = plugin_name
        super().__init__(path, _RequestHandler)

    def get_request(self):
        sock, _ = super().get_request()
        return sock, ("", 0)  # BaseHTTPRequestHandler expects an (host, port) address


class PluginServer:
    def __init__(self, socket_path: Path, routes: dict[str, Handler], name: str) -> None:
        self.socket_path = socket_path
        self.routes = routes
        self.name = name
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(self.socket_path)
        self._server = _UnixHTTPServer(str(self.socket_path), self.routes, self.name)
        os.chmod(self.socket_path, 0o660)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"plugin-{self.name}", daemon=True)
        self._thread.start()
        log.info("Serving Docker plugin %s on %s", self.name, self.socket_path)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        remove_stale(self.socket_path)


def remove_stale(path: Path) -> None:
    """A socket left by a killed agent makes Docker hang on connect: remove it."""
    path.unlink(missing_ok=True)

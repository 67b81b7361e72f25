"""Just enough of Docker's Engine API client for the network driver: NetworkInspect.

libnetwork-plugin v1.1.0 asks Docker for the network's name at CreateEndpoint
(dockerClient.NewEnvClient + NetworkInspect), because profiles are named after networks.
Standard library only; one GET over the daemon's unix socket.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SOCKET = Path("/var/run/docker.sock")


class DockerError(RuntimeError):
    """The Docker daemon could not be asked, or refused the request."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.unix_path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True)
class DockerClient:
    socket_path: Path = DEFAULT_SOCKET
    timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DockerClient:
        """DOCKER_HOST=unix:///path as the Go client reads it; anything else: the default socket."""
        host = env.get("DOCKER_HOST", "")
        if host.startswith("unix://"):
            return cls(Path(host[len("unix://"):]))
        return cls()

    def _get(self, path: str) -> dict:
        conn = _UnixConnection(self.socket_path, self.timeout)
        try:
            conn.request("GET", path, headers={"Accept": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
        except OSError:
            raise DockerError(f"Cannot connect to the Docker daemon at unix://{self.socket_path}. "
                              "Is the docker daemon running?") from None
        finally:
            conn.close()
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        if resp.status != 200:
            message = payload.get("message") if isinstance(payload, dict) else None
            raise DockerError(f"Error response from daemon: {message or body.decode(errors='replace').strip()}")
        if not isinstance(payload, dict):
            raise DockerError(f"unexpected answer to GET {path}: {body[:200]!r}")
        return payload

    def network_inspect(self, network_id: str) -> dict:
        return self._get("/networks/" + urllib.parse.quote(network_id, safe=""))

    def network_name(self, network_id: str) -> str:
        name = self.network_inspect(network_id).get("Name")
        if not isinstance(name, str) or not name:
            raise DockerError(f"network {network_id} has no name in Docker's answer")
        return name

"""A small client for etcd's v2 keys API (the API Calico 2.6 and Docker's cluster store use).

Standard library only: the agent runs on Debian's python3 without extra packages.
Compare-and-swap (prevExist / prevIndex) is what keeps two nodes from claiming the same
IPAM block or clobbering each other's writes.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation: config.py needs nothing from here
    from .config import Config

log = logging.getLogger(__name__)

# etcd v2 error codes we act on (etcd/error/error.go).
KEY_NOT_FOUND = 100
COMPARE_FAILED = 101
NODE_EXIST = 105


class EtcdError(Exception):
    """etcd answered with an error we do not map to a more specific class."""


class EtcdKeyNotFound(EtcdError):
    """The key (or directory) does not exist."""


class EtcdConflict(EtcdError):
    """A compare-and-swap lost: prevIndex/prevValue did not match, or prevExist=false and the key exists."""


class EtcdUnavailable(EtcdError):
    """No endpoint answered."""


@dataclass
class EtcdNode:
    key: str
    value: str | None = None
    modified_index: int = 0
    created_index: int = 0
    dir: bool = False
    children: list[EtcdNode] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict) -> EtcdNode:
        return cls(
            key=data.get("key", "/"),
            value=data.get("value"),
            modified_index=int(data.get("modifiedIndex", 0)),
            created_index=int(data.get("createdIndex", 0)),
            dir=bool(data.get("dir", False)),
            children=[cls.from_json(n) for n in data.get("nodes", [])],
        )

    @property
    def name(self) -> str:
        return self.key.rstrip("/").rsplit("/", 1)[-1]

    def leaves(self) -> Iterator[EtcdNode]:
        """Every non-directory node at or below this one."""
        if not self.dir:
            yield self
        for child in self.children:
            yield from child.leaves()


class EtcdClient:
    """v2 keys API over HTTP(S), failing over between the endpoints of ETCD_ENDPOINTS."""

    def __init__(
        self,
        endpoints: list[str],
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        self._preferred = 0
        self._ssl: ssl.SSLContext | None = None
        # As libcalico-go's etcd transport: https (or a CA file) means TLS, checked against the
        # CA file (else the system roots), with the client certificate when one is given.
        if any(e.startswith("https://") for e in self.endpoints) or ca_file or cert_file:
            try:
                self._ssl = ssl.create_default_context(cafile=ca_file)
                if cert_file:
                    self._ssl.load_cert_chain(cert_file, key_file)
            except (OSError, ssl.SSLError) as exc:
                raise EtcdError(f"cannot use the etcd TLS files (ETCD_CA_CERT_FILE={ca_file or ''}, "
                                f"ETCD_CERT_FILE={cert_file or ''}, ETCD_KEY_FILE={key_file or ''}): {exc}") from None

    # -- transport -------------------------------------------------------------------------
    @classmethod
    def for_config(cls, cfg: Config) -> EtcdClient:
        """The client every service of the double uses: calico/node's ETCD_* settings."""
        return cls(cfg.etcd_endpoints, cfg.etcd_ca_file, cfg.etcd_cert_file, cfg.etcd_key_file)

    def _open(self, method: str, path: str, data: bytes | None, timeout: float) -> tuple[int, bytes, dict]:
        """Try each endpoint, starting with the last one that answered."""
        errors: list[str] = []
        order = self.endpoints[self._preferred :] + self.endpoints[: self._preferred]
        for endpoint in order:
            req = urllib.request.Request(endpoint + path, data=data, method=method)
            if data is not None:
                req.add_header("Content-Type", "application/x-www-form-urlencoded")
            try:
                with urllib.request.urlopen(req, timeout=timeout, context=self._ssl) as resp:
                    self._preferred = self.endpoints.index(endpoint)
                    return resp.status, resp.read(), dict(resp.headers)
            except urllib.error.HTTPError as exc:
                # An HTTP answer means the endpoint is alive: no failover.
                self._preferred = self.endpoints.index(endpoint)
                return exc.code, exc.read(), dict(exc.headers or {})
            except (TimeoutError, urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                errors.append(f"{endpoint}: {reason}")
        raise EtcdUnavailable("no etcd endpoint answered (" + "; ".join(errors) + ")")

    def _keys(self, method: str, key: str, params: dict | None = None, form: dict | None = None,
              timeout: float | None = None) -> dict:
        path = "/v2/keys" + urllib.parse.quote(key if key.startswith("/") else "/" + key)
        if params:
            path += "?" + urllib.parse.urlencode({k: _param(v) for k, v in params.items()})
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        status, body, _ = self._open(method, path, data, timeout or self.timeout)
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        if status < 300:
            return payload
        code = payload.get("errorCode")
        message = f"{method} {key}: {payload.get('message', body[:200])} ({payload.get('cause', '')})"
        if code == KEY_NOT_FOUND:
            raise EtcdKeyNotFound(message)
        if code in (COMPARE_FAILED, NODE_EXIST):
            raise EtcdConflict(message)
        if status == 404 and code is None:
            raise EtcdError(
                "etcd does not serve the v2 API (/v2/keys answered 404): "
                "etcd 3.4/3.5 need --enable-v2=true (ETCD_ENABLE_V2=true)"
            )
        raise EtcdError(f"HTTP {status}: {message}")

    # -- API -------------------------------------------------------------------------------
    def version(self) -> dict:
        status, body, _ = self._open("GET", "/version", None, self.timeout)
        if status != 200:
            raise EtcdError(f"GET /version: HTTP {status}")
        return json.loads(body)

    def get(self, key: str, recursive: bool = False) -> EtcdNode:
        params = {"recursive": True} if recursive else None
        return EtcdNode.from_json(self._keys("GET", key, params)["node"])

    def get_value(self, key: str, default: str | None = None) -> str | None:
        try:
            return self.get(key).value
        except EtcdKeyNotFound:
            return default

    def get_value_and_index(self, key: str) -> tuple[str | None, int]:
        """A key's value (None when absent) and etcd's store index at that read: a poller reads
        one key and learns whether anything in the v2 store changed since its last pass."""
        node, index = self._get_indexed(key)
        return (node or {}).get("value"), index

    def _get_indexed(self, key: str, recursive: bool = False) -> tuple[dict | None, int]:
        """GET `key`: its node as etcd sends it (None when absent) and the store index of the
        read (X-Etcd-Index, sent with every answer, a 404 too)."""
        path = "/v2/keys" + urllib.parse.quote(key if key.startswith("/") else "/" + key)
        status, body, headers = self._open("GET", path + ("?recursive=true" if recursive else ""), None,
                                           self.timeout)
        index = int({k.lower(): v for k, v in headers.items()}.get("x-etcd-index", "0") or 0)
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        if status == 404 and payload.get("errorCode") == KEY_NOT_FOUND:
            return None, int(payload.get("index", index) or index)
        if status >= 300:
            raise EtcdError(f"GET {key}: HTTP {status} {payload.get('message', body[:200])}")
        return payload.get("node") or {}, index

    def set(self, key: str, value: str, *, prev_exist: bool | None = None,
            prev_index: int | None = None, prev_value: str | None = None) -> EtcdNode:
        params: dict = {}
        if prev_exist is not None:
            params["prevExist"] = prev_exist
        if prev_index is not None:
            params["prevIndex"] = prev_index
        if prev_value is not None:
            params["prevValue"] = prev_value
        return EtcdNode.from_json(self._keys("PUT", key, params, {"value": value})["node"])

    def create(self, key: str, value: str) -> EtcdNode:
        """Create only if absent; raises EtcdConflict when the key exists."""
        return self.set(key, value, prev_exist=False)

    def create_if_absent(self, key: str, value: str) -> bool:
        try:
            self.create(key, value)
            return True
        except EtcdConflict:
            return False

    def delete(self, key: str, *, recursive: bool = False, prev_index: int | None = None) -> None:
        params: dict = {}
        if recursive:
            params.update(recursive=True, dir=True)
        if prev_index is not None:
            params["prevIndex"] = prev_index
        self._keys("DELETE", key, params)

    def delete_if_present(self, key: str, *, recursive: bool = False) -> bool:
        try:
            self.delete(key, recursive=recursive)
            return True
        except EtcdKeyNotFound:
            return False

    def create_dir(self, key: str) -> bool:
        """Create an empty directory; False when it exists."""
        try:
            self._keys("PUT", key, {"dir": True, "prevExist": False})
            return True
        except EtcdConflict:
            return False

    def delete_empty_dir(self, key: str) -> bool:
        """Delete a directory only if it is empty (etcd refuses a full one); False when absent."""
        try:
            self._keys("DELETE", key, {"dir": True})
            return True
        except EtcdKeyNotFound:
            return False

    def children(self, key: str) -> list[EtcdNode]:
        """Direct children of a directory ([] when it does not exist)."""
        try:
            return self.get(key).children
        except EtcdKeyNotFound:
            return []

    def leaves(self, key: str) -> list[EtcdNode]:
        """All values below a directory, recursively ([] when it does not exist)."""
        try:
            return list(self.get(key, recursive=True).leaves())
        except EtcdKeyNotFound:
            return []

    def snapshot(self, key: str) -> tuple[list[tuple[str, str]], int]:
        """Every (key, value) below `key` and the etcd index they were read at (X-Etcd-Index),
        from which `wait_for_change` can continue without missing a write."""
        node, index = self._get_indexed(key, recursive=True)
        if node is None:
            return [], index
        return [(n.key, n.value or "") for n in EtcdNode.from_json(node).leaves() if n.value is not None], index

    def wait_for_change(self, key: str, after_index: int, timeout: float) -> int | None:
        """Block until something below `key` changes after `after_index` (a v2 watch with
        waitIndex); the change's index, or None when `timeout` passes quietly. Raises
        EtcdError when etcd no longer holds that history (error 401): read a new snapshot."""
        endpoint = self.endpoints[self._preferred]
        query = urllib.parse.urlencode({"wait": "true", "recursive": "true", "waitIndex": after_index + 1})
        req = urllib.request.Request(f"{endpoint}/v2/keys{urllib.parse.quote(key)}?{query}")
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl) as resp:
                payload = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise EtcdError(f"watch {key}: HTTP {exc.code}") from None
        except (TimeoutError, OSError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError) or "timed out" in str(reason):
                return None
            raise EtcdUnavailable(f"watch {key} on {endpoint}: {reason}") from None
        if "errorCode" in payload:
            raise EtcdError(f"watch {key}: {payload.get('message')} ({payload.get('cause', '')})")
        node = payload.get("node") or {}
        return int(node.get("modifiedIndex", after_index + 1))

    def wait_until_ready(self, timeout: float, interval: float = 1.0) -> dict:
        """Poll until a v2 read works; raise the last error after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        next_report = 0.0
        while True:
            try:
                version = self.version()
                self._keys("GET", "/")  # proves the v2 keys API is on
                return version
            except EtcdError as exc:
                now = time.monotonic()
                if now >= deadline:
                    raise
                if now >= next_report:
                    log.warning("Waiting for etcd (%s): %s", ", ".join(self.endpoints), exc)
                    next_report = now + 10
                time.sleep(interval)


def _param(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

"""What the Calico double's unit tests share: an in-memory etcd v2 (and one served over HTTP), a
recording netdev, and the upstream oracles (golden outputs of the real Calico code): an input
read at run time from the folder CALICOLAB_ORACLES names, by default `shared/oracles` beside the
checkout (oracles_dir), not part of the project. A module of its own, not conftest.py: another
test folder's conftest.py would shadow `from conftest import ...` when pytest collects both."""

from __future__ import annotations

import functools
import http.server
import importlib
import json
import os
import sys
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# -- oracles ---------------------------------------------------------------------------------
# Golden outputs computed by the real upstream code (issue 24). They live outside the repo; a
# missing folder or file is a failure naming it, never a skip, so CI cannot pass without them.
ORACLES_ENV = "CALICOLAB_ORACLES"


def oracles_dir() -> Path:
    override = os.environ.get(ORACLES_ENV, "").strip()
    return Path(override) if override else REPO_ROOT.parent / "shared" / "oracles"


@functools.cache
def _load_oracle(filename: str) -> dict[str, Any] | str:
    """The parsed oracle file, or the one-line reason it cannot be had."""
    folder = oracles_dir()
    if not folder.is_dir():
        return f"oracle folder missing: {folder} (set {ORACLES_ENV} to the folder holding {filename})"
    path = folder / filename
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return f"oracle file missing: {path}"
    except (OSError, ValueError) as exc:
        return f"oracle file unreadable: {path}: {exc}"
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        return f"oracle file has no 'cases' list: {path}"
    return data


def load_oracle(filename: str) -> dict[str, Any]:
    """The oracle file's whole document; fails the calling test in one line when it is missing."""
    data = _load_oracle(filename)
    if isinstance(data, str):
        pytest.fail(data, pytrace=False)
    return data


def oracle_params(filename: str, key: str = "cases") -> list[Any]:
    """pytest.param per entry of the file's `key` list, id = its name, for @pytest.mark.parametrize.

    When the file cannot be read, one param carrying the reason (a str); pass each value through
    oracle_case() so that param fails with that line instead of the test silently vanishing."""
    data = _load_oracle(filename)
    if isinstance(data, str):
        return [pytest.param(data, id=f"{filename}:unavailable")]
    return [pytest.param(entry, id=str(entry.get("name", index))) for index, entry in enumerate(data[key])]


def oracle_case(value: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(value, str):
        pytest.fail(value, pytrace=False)
    return value


_etcd = importlib.import_module("calico_double.agent.etcd")
EtcdConflict, EtcdKeyNotFound, EtcdNode = _etcd.EtcdConflict, _etcd.EtcdKeyNotFound, _etcd.EtcdNode


class FakeEtcd:
    """The subset of EtcdClient the agent uses, with etcd's index and compare-and-swap rules.

    `before_write` lets a test slip in a competing write just before one of ours.
    """

    def __init__(self) -> None:
        self.data: dict[str, tuple[str, int]] = {}
        self.index = 0
        self.before_write: Callable[[str, dict], None] | None = None
        self.watches: list[tuple[str, int, float]] = []

    def _bump(self) -> int:
        self.index += 1
        return self.index

    def put(self, key: str, value: str) -> None:
        """Unconditional write that bypasses before_write (for test setup and rivals)."""
        self.data[key] = (value, self._bump())

    def get(self, key: str, recursive: bool = False) -> EtcdNode:
        key = "/" + key.strip("/")
        if key in self.data:
            value, index = self.data[key]
            return EtcdNode(key=key, value=value, modified_index=index)
        prefix = key.rstrip("/") + "/"
        below = [k for k in self.data if k.startswith(prefix)]
        if not below and key != "/":
            raise EtcdKeyNotFound(key)
        names = sorted({k[len(prefix):].split("/", 1)[0] for k in below})
        children = []
        for name in names:
            child = prefix + name
            if child in self.data or recursive:
                children.append(self.get(child, recursive))
            else:
                children.append(EtcdNode(key=child, dir=True))
        return EtcdNode(key=key, dir=True, children=children)

    def get_value(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get("/" + key.strip("/"))
        return value[0] if value else default

    def get_value_and_index(self, key: str) -> tuple[str | None, int]:
        return self.get_value(key), self.index

    def wait_for_change(self, key: str, after_index: int, timeout: float) -> int | None:
        """A v2 watch that never blocks: the first change below `key` after `after_index`, or None
        (as if `timeout` passed). Each call is recorded in `watches`."""
        self.watches.append((key, after_index, timeout))
        prefix = "/" + key.strip("/") + "/"
        changed = sorted(index for k, (_, index) in self.data.items() if k.startswith(prefix) and index > after_index)
        return changed[0] if changed else None

    def set(self, key: str, value: str, *, prev_exist: bool | None = None,
            prev_index: int | None = None, prev_value: str | None = None) -> EtcdNode:
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook(key, {"prev_exist": prev_exist, "prev_index": prev_index})
        current = self.data.get(key)
        if prev_exist is False and current is not None:
            raise EtcdConflict(f"{key}: Key already exists")
        if prev_exist is True and current is None:
            raise EtcdKeyNotFound(key)
        if prev_index is not None:
            if current is None:
                raise EtcdKeyNotFound(key)
            if current[1] != prev_index:
                raise EtcdConflict(f"{key}: Compare failed")
        index = self._bump()
        self.data[key] = (value, index)
        return EtcdNode(key=key, value=value, modified_index=index)

    def create(self, key: str, value: str) -> EtcdNode:
        return self.set(key, value, prev_exist=False)

    def create_if_absent(self, key: str, value: str) -> bool:
        try:
            self.create(key, value)
            return True
        except EtcdConflict:
            return False

    def delete(self, key: str, *, recursive: bool = False, prev_index: int | None = None) -> None:
        if key in self.data:
            del self.data[key]
            return
        below = [k for k in self.data if k.startswith(key.rstrip("/") + "/")]
        if not below:
            raise EtcdKeyNotFound(key)
        for k in below:
            del self.data[k]

    def delete_if_present(self, key: str, *, recursive: bool = False) -> bool:
        try:
            self.delete(key, recursive=recursive)
            return True
        except EtcdKeyNotFound:
            return False

    def children(self, key: str) -> list[EtcdNode]:
        try:
            return self.get(key).children
        except EtcdKeyNotFound:
            return []

    def leaves(self, key: str) -> list[EtcdNode]:
        try:
            return list(self.get(key, recursive=True).leaves())
        except EtcdKeyNotFound:
            return []


class RecordingNetDev:
    """Stands in for NetDev: records calls instead of running `ip`."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.proc_sys = Path("/nonexistent")

    def create_veth(self, host: str, peer: str, mac: str, mtu: int | None = None) -> None:
        self.calls.append(("create_veth", host, peer, mac, mtu))

    def delete_link(self, name: str) -> None:
        self.calls.append(("delete_link", name))

    def replace_host_route(self, ip: object, dev: str) -> None:
        self.calls.append(("replace_host_route", str(ip), dev))

    def delete_host_route(self, ip: object, dev: str) -> None:
        self.calls.append(("delete_host_route", str(ip), dev))

    def write_sysctl(self, path: str, value: str) -> None:
        self.calls.append(("sysctl", path, value))


class EtcdV2HTTP:
    """An etcd v2 keys API over HTTP on a flat {key: value} map: directories implied by the
    keys, children sorted by key, `recursive` honoured, errorCode 100 for a missing key."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                key = "/" + urllib.parse.unquote(path.split("/v2/keys", 1)[1]).strip("/")
                node = owner.node(key, "recursive=true" in query)
                if node is None:
                    body, code = {"errorCode": 100, "message": "Key not found", "cause": key, "index": 9}, 404
                else:
                    body, code = {"action": "get", "node": node}, 200
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def node(self, key: str, recursive: bool, top: bool = True) -> dict[str, Any] | None:
        if key in self.keys:
            return {"key": key, "value": self.keys[key], "modifiedIndex": 5, "createdIndex": 5}
        prefix = key.rstrip("/") + "/"
        names = sorted({k[len(prefix):].split("/", 1)[0] for k in self.keys if k.startswith(prefix)})
        if not names and key != "/":
            return None
        node: dict[str, Any] = {"key": key, "dir": True, "modifiedIndex": 5, "createdIndex": 5}
        if top or recursive:
            children = [self.node(prefix + name, recursive, top=False) for name in names]
            node["nodes"] = [child for child in children if child is not None]
        return node

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""Just enough of etcd's v2 keys API for the double's agents, in-process: GET of a key or a
prefix with X-Etcd-Index, and watches with waitIndex."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubEtcd:
    """Just enough of etcd's v2 keys API for felix: recursive GET with X-Etcd-Index, watch."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[str, int]] = {}
        self.index = 10
        self.cond = threading.Condition()
        self.failing = False
        self.gets = 0  # snapshot reads served
        self.refused = 0  # requests answered with an error while failing
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                key = urllib.parse.unquote(url.path[len("/v2/keys"):]) or "/"
                if stub.failing:
                    stub.refused += 1
                    self.send_error(500)
                    return
                if query.get("wait") == "true":
                    want = int(query["waitIndex"])
                    with stub.cond:
                        stub.cond.wait_for(lambda: stub.index >= want or stub.failing, timeout=30)
                        body = {"action": "set", "node": {"key": key, "modifiedIndex": stub.index}}
                    self._send(body, stub.index)
                    return
                with stub.cond:
                    stub.gets += 1
                    if key in stub.data:  # one key, as get_value reads it
                        value, modified = stub.data[key]
                        self._send({"action": "get", "node": {"key": key, "value": value,
                                                              "modifiedIndex": modified}}, stub.index)
                        return
                    nodes = [{"key": k, "value": v, "modifiedIndex": i} for k, (v, i) in sorted(stub.data.items())
                             if k.startswith(key.rstrip("/") + "/")]
                    index = stub.index
                self._send({"action": "get", "node": {"key": key, "dir": True, "nodes": nodes}}, index)

            def _send(self, payload: dict, index: int) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Etcd-Index", str(index))
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def put(self, key: str, value: str) -> None:
        with self.cond:
            self.index += 1
            self.data[key] = (value, self.index)
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.failing = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

"""A small etcd client that drives one member the way Calico 2.6 and Docker's cluster store do,
and records what it asked and what came back (Python standard library only, so it runs
wherever a python3 is: the host, a VM, a node).

v2 (/v2/keys): PUT, GET with and without quorum, compare-and-swap on prevValue and prevIndex,
create with prevExist=false, DELETE, and a recursive watch with waitIndex. v3 through the JSON
gRPC gateway (/v3beta on 3.3, /v3 from 3.4; etcd-io/etcd Documentation/dev-guide/
api_grpc_gateway.md): kv/put, kv/range, kv/txn comparing mod_revision, value or
create_revision, kv/deleterange. The prefix is read off the member's /version and read again
whenever the member goes away (an upgrade restarts it at another version).

Every operation is written as an `invoke` line before it is sent and an `ok`, `fail` or `info`
line when it ends (see calicolab/etcd_history/operations.py), with time.monotonic() stamps: clients on
one host share that clock, which orders operations across clients in real time.

Usage: etcd_client.py --endpoint http://IP:2379 --name node1 --prefix /calicolab-history/ID
       --keys 5 --out FILE [--v3] [--watch-from INDEX] [--tls CA,CERT,KEY] [--plant lost-write]
SIGTERM stops the writers (each finishes its operation); SIGUSR1 then lets the watcher drain
until nothing more arrives, and the program exits.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import random
import signal
import ssl
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

TIMEOUT = 2.0  # per request; an answer later than this is indeterminate
WATCH_POLL = 2.0  # one watch long-poll; a quiet one is simply repeated at the same index
DRAIN_IDLE = 1.5  # after the writers stopped: this long without an event means caught up
DRAIN_DEADLINE = 15.0
DOWN_BACKOFF = 0.25


class NotSent(Exception):
    """The request never left: no connection. Certainly not applied."""


class Unknown(Exception):
    """The request may have reached etcd: no (complete) answer."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict

    @property
    def error_code(self) -> int | None:
        return self.body.get("errorCode") if isinstance(self.body, dict) else None


@dataclass
class Endpoint:
    url: str
    tls: tuple[str, str, str] | None = None
    _ctx: ssl.SSLContext | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        self.scheme, self.host, self.port = parts.scheme, parts.hostname or "", parts.port or 2379
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.tls[0] if self.tls else None)
            if self.tls:
                ctx.load_cert_chain(self.tls[1], self.tls[2])
            self._ctx = ctx

    def request(self, method: str, path: str, body: str | None = None, content_type: str = "",
                timeout: float = TIMEOUT) -> Reply:
        if self.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self._ctx)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            try:
                conn.connect()
            except OSError as err:
                raise NotSent(f"connect: {err.__class__.__name__}: {err}") from None
            headers = {"Content-Type": content_type} if content_type else {}
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as err:
                raise Unknown(f"{err.__class__.__name__}: {err}".rstrip(": ")) from None
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                data = {"raw": raw[:200].decode(errors="replace")}
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()


class Recorder:
    """JSON lines, one per event, flushed as written (a stopped client keeps what it saw)."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 -- closed by close()
        self._lock = threading.Lock()

    def write(self, **rec: object) -> None:
        line = json.dumps(rec)
        with self._lock:
            self._file.write(line + "\n")

    def close(self) -> None:
        self._file.close()


_ids = iter(range(1, 1 << 62))
_id_lock = threading.Lock()


def _next_id(name: str) -> str:
    with _id_lock:
        return f"{name}-{next(_ids)}"


class Client:
    """One logical client process: one operation at a time, each recorded."""

    def __init__(self, endpoint: Endpoint, recorder: Recorder, process: str) -> None:
        self.ep, self.rec, self.process = endpoint, recorder, process
        self._v3_prefix: str | None = None

    # -- the recording frame ---------------------------------------------------------------
    def run(self, api: str, f: str, key: str, value: str | None = None, expect: object = None) -> dict:
        op_id = _next_id(self.process)
        self.rec.write(type="invoke", id=op_id, process=self.process, api=api, f=f, key=key, value=value,
                       expect=expect, endpoint=self.ep.url, invoke=time.monotonic())
        try:
            result = (self._v2 if api == "v2" else self._v3)(f, key, value, expect)
            kind = "ok"
        except NotSent as err:
            result, kind = {"error": str(err)}, "fail"
            self._v3_prefix = None  # the member went away: ask its version again
        except Unknown as err:
            # A read that got no answer changed nothing; a write may have applied.
            result, kind = {"error": str(err)}, "fail" if f.startswith("get") else "info"
            self._v3_prefix = None
        except Definite as err:
            result, kind = {"error": str(err)}, "fail"
        self.rec.write(type=kind, id=op_id, complete=time.monotonic(), **result)
        return {"outcome": kind, **result}

    # -- v2 ----------------------------------------------------------------------------------
    def _v2(self, f: str, key: str, value: str | None, expect: object) -> dict:
        path = "/v2/keys" + urllib.parse.quote(key)
        form = "application/x-www-form-urlencoded"
        if f in ("get", "get_local"):
            reply = self.ep.request("GET", path + ("?quorum=true" if f == "get" else ""))
        elif f == "delete":
            reply = self.ep.request("DELETE", path)
        else:
            fields = {"value": value or ""}
            if f == "cas_value":
                fields["prevValue"] = str(expect)
            elif f == "cas_index":
                fields["prevIndex"] = str(expect)
            elif f == "create":
                fields["prevExist"] = "false"
            reply = self.ep.request("PUT", path, urllib.parse.urlencode(fields), form)
        _raise_for_server_error(reply, f)
        node = reply.body.get("node") or {}
        out: dict = {}
        if f in ("get", "get_local"):
            if reply.status == 404 and reply.error_code == 100:
                out = {"found": False}
            elif reply.status == 200:
                out = {"found": True, "read": node.get("value"), "index": node.get("modifiedIndex")}
            else:
                raise Definite(f"HTTP {reply.status} {reply.body}")
            if f == "get_local" and "x-etcd-index" in reply.headers:
                out["member_index"] = int(reply.headers["x-etcd-index"])
            return out
        if reply.status in (200, 201):
            out = {"index": node.get("modifiedIndex"), "prev": (reply.body.get("prevNode") or {}).get("value")}
            return out if f == "put" else {**out, "succeeded": True}
        # Compare failed (101), node exists (105), key not found (100): definite "not applied".
        if f != "put" and reply.error_code in (100, 101, 105):
            return {"succeeded": False, "error": f"etcd error {reply.error_code}"}
        raise Definite(f"HTTP {reply.status} {reply.body}")

    # -- v3 ----------------------------------------------------------------------------------
    def v3_prefix(self) -> str:
        if self._v3_prefix is None:
            reply = self.ep.request("GET", "/version")
            server = str(reply.body.get("etcdserver", ""))
            if not server:
                raise NotSent(f"/version answered {reply.status} {reply.body}")
            major, minor = (int(x) for x in server.split(".")[:2])
            self._v3_prefix = "/v3beta" if (major, minor) < (3, 4) else "/v3"
        return self._v3_prefix

    def _v3(self, f: str, key: str, value: str | None, expect: object) -> dict:
        k = _b64(key)
        if f == "get":
            reply = self._v3_call("kv/range", {"key": k})
            kvs = reply.body.get("kvs") or []
            if not kvs:
                return {"found": False}
            return {"found": True, "read": _unb64(kvs[0].get("value", "")), "index": int(kvs[0]["mod_revision"])}
        if f == "put":
            reply = self._v3_call("kv/put", {"key": k, "value": _b64(value or ""), "prev_kv": True})
            prev = reply.body.get("prev_kv")
            return {"index": int(reply.body["header"]["revision"]),
                    "prev": _unb64(prev.get("value", "")) if prev else None}
        if f == "delete":
            reply = self._v3_call("kv/deleterange", {"key": k})
            deleted = int(reply.body.get("deleted", 0))  # zero values are left out of the JSON
            return {"succeeded": deleted > 0, "index": int(reply.body["header"]["revision"]) if deleted else None}
        compare = {"key": k, "result": "EQUAL"}
        if f == "cas_value":
            compare |= {"target": "VALUE", "value": _b64(str(expect))}
        elif f == "cas_index":
            compare |= {"target": "MOD", "mod_revision": str(expect)}
        else:  # create: the key was never created (or deleted since)
            compare |= {"target": "CREATE", "create_revision": "0"}
        reply = self._v3_call("kv/txn", {"compare": [compare],
                                         "success": [{"request_put": {"key": k, "value": _b64(value or "")}}]})
        if reply.body.get("succeeded"):
            return {"succeeded": True, "index": int(reply.body["header"]["revision"])}
        return {"succeeded": False}

    def _v3_call(self, method: str, body: dict) -> Reply:
        prefix = self.v3_prefix()
        reply = self.ep.request("POST", f"{prefix}/{method}", json.dumps(body), "application/json")
        if reply.status == 404:
            self._v3_prefix = None  # the route is not there: this member runs another version
            raise Definite(f"HTTP 404 on {prefix}/{method}")
        _raise_for_server_error(reply, method)
        if reply.status != 200:
            raise Definite(f"HTTP {reply.status} {reply.body}")
        return reply


class Definite(Exception):
    """etcd refused the request before acting on it (a 4xx): certainly not applied."""


def _raise_for_server_error(reply: Reply, what: str) -> None:
    # A 5xx may come after the proposal was made (e.g. v2 "Raft Internal Error" on a timeout):
    # the write may still commit.
    if reply.status >= 500:
        raise Unknown(f"HTTP {reply.status} {reply.body}")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode(errors="replace")


# -- the workload ---------------------------------------------------------------------------------

MIX = (("put", 25), ("get", 20), ("get_local", 10), ("cas_value", 15), ("cas_index", 15),
       ("create", 5), ("delete", 10))


def worker(client: Client, api: str, keys: list[str], stop: threading.Event, interval: float,
           plant: str, rng: random.Random) -> None:
    """Random operations on shared keys; a CAS names what this client last saw of the key, so
    some succeed and some fail as other clients race it."""
    known: dict[str, tuple[str | None, int | None]] = {}
    names = [f for f, _ in MIX if api == "v2" or f != "get_local"]
    weights = [w for f, w in MIX if api == "v2" or f != "get_local"]
    seq = 0
    planted = False
    while not stop.is_set():
        key = rng.choice(keys)
        f = rng.choices(names, weights)[0]
        seq += 1
        value = f"{client.process}#{seq}"
        seen_value, seen_index = known.get(key, (None, None))
        if f == "cas_value" and seen_value is None or f == "cas_index" and seen_index is None:
            f = "get"
        expect = seen_value if f == "cas_value" else seen_index if f == "cas_index" else None
        res = client.run(api, f, key, None if f.startswith("get") or f == "delete" else value, expect)
        if res["outcome"] == "ok":
            if f in ("get", "get_local"):
                known[key] = (res.get("read"), res.get("index")) if res.get("found") else (None, None)
            elif f == "delete" and res.get("succeeded"):
                known[key] = (None, None)
            elif f == "put" or res.get("succeeded"):
                known[key] = (value, res.get("index"))
                if plant == "lost-write" and not planted and f == "put" and res.get("prev") is not None:
                    planted = _plant_lost_write(client, api, key, value, res["prev"])
        # A member that refuses connections is down (being upgraded): ask less often meanwhile.
        stop.wait(interval if res["outcome"] != "fail" or "connect:" not in res.get("error", "") else DOWN_BACKOFF)


def _plant_lost_write(client: Client, api: str, key: str, value: str, prev: str) -> bool:
    """For proving the checks can fail: behind the history's back, put the previous value back
    over an acknowledged write (as a store that lost it would show), then read the key."""
    try:
        if api == "v2":
            client.ep.request("PUT", "/v2/keys" + urllib.parse.quote(key), urllib.parse.urlencode({"value": prev}),
                              "application/x-www-form-urlencoded")
        else:
            client._v3_call("kv/put", {"key": _b64(key), "value": _b64(prev)})
    except (NotSent, Unknown, Definite):
        return False
    client.rec.write(type="note", text=f"planted lost-write: {api} {key}: acknowledged {value!r} replaced by "
                                       f"{prev!r} unrecorded")
    client.run(api, "get", key)
    return True


def watcher(endpoint: Endpoint, rec: Recorder, name: str, folder: str, start: int, drain: threading.Event) -> None:
    """A v2 recursive watch from `start`, one long-poll per event, as Docker's libkv and Calico's
    agents use it; reconnects at the next index when the member goes away."""
    index = start
    rec.write(type="watch-start", watcher=name, index=start)
    path = "/v2/keys" + urllib.parse.quote(folder) + "?wait=true&recursive=true&waitIndex="
    quiet_since: float | None = None
    drain_started: float | None = None
    while True:
        if drain.is_set():
            drain_started = drain_started or time.monotonic()
            if quiet_since is not None and time.monotonic() - quiet_since >= DRAIN_IDLE:
                return
            if time.monotonic() - drain_started > DRAIN_DEADLINE:
                rec.write(type="watch-gap", watcher=name,
                          error=f"still behind after {DRAIN_DEADLINE:.0f} s of draining")
                return
        asked = time.monotonic()
        try:
            reply = endpoint.request("GET", path + str(index), timeout=DRAIN_IDLE if drain.is_set() else WATCH_POLL)
        except NotSent:
            time.sleep(0.1)
            continue
        except Unknown:  # a quiet poll times out: ask again from the same index
            if drain.is_set() and quiet_since is None:
                # Quiet since the poll was asked: one quiet poll of DRAIN_IDLE is enough (counted
                # from its end, the drain took two, 3 s of every measured window's stop).
                quiet_since = asked
            continue
        quiet_since = None
        if reply.status == 400 and reply.error_code == 401:  # the index left the event history
            current = int(reply.headers.get("x-etcd-index", index))
            rec.write(type="watch-gap", watcher=name, error=f"event history cleared at waitIndex {index} "
                      f"(store at {current}): changes in between are unseen")
            index = current + 1
            continue
        if reply.status != 200:
            time.sleep(0.1)
            continue
        node = reply.body.get("node") or {}
        got = int(node.get("modifiedIndex", index))
        rec.write(type="watch", watcher=name, key=node.get("key", ""), action=reply.body.get("action", ""),
                  index=got, value=node.get("value"), at=time.monotonic())
        index = got + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--keys", type=int, default=5)
    parser.add_argument("--out", required=True)
    parser.add_argument("--v3", action="store_true")
    parser.add_argument("--watch-from", type=int, default=0)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--tls", default="")
    parser.add_argument("--plant", default="", choices=("", "lost-write"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tls = tuple(args.tls.split(",")) if args.tls else None
    endpoint = Endpoint(args.endpoint, tls)  # type: ignore[arg-type]
    rec = Recorder(args.out)
    stop, drain = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: drain.set())
    rng = random.Random(args.seed or None)
    threads = [threading.Thread(target=worker, args=(
        Client(endpoint, rec, f"{args.name}/v2"), "v2", [f"{args.prefix}/v2/k{i}" for i in range(args.keys)],
        stop, args.interval, args.plant, random.Random(rng.random())))]
    if args.v3:
        threads.append(threading.Thread(target=worker, args=(
            Client(endpoint, rec, f"{args.name}/v3"), "v3", [f"{args.prefix}/v3/k{i}" for i in range(args.keys)],
            stop, args.interval, args.plant, random.Random(rng.random()))))
    watch = None
    if args.watch_from:
        watch = threading.Thread(target=watcher, args=(endpoint, rec, f"{args.name}/watch", f"{args.prefix}/v2",
                                                       args.watch_from, drain))
        watch.start()
    for t in threads:
        t.start()
    rec.write(type="note", text=f"{args.name}: started against {args.endpoint}")
    for t in threads:
        while t.is_alive():
            t.join(0.2)
    rec.write(type="note", text=f"{args.name}: writers stopped")
    if watch is not None:
        while watch.is_alive():
            watch.join(0.2)
    rec.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

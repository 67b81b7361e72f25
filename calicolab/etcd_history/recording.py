"""Record etcd client histories while something runs (an upgrade, a fault), then check them.

The clients (calicolab/etcd_history/etcd_client.py) run on the host, one per member, each against
that member's client URL over the lab's private network, as the node's own Calico and Docker
talk to their local member. On the host rather than the nodes because (a) the lab's Debian
nodes and the CentOS 7 VMs carry no python3, and installing one would change the host the
guide describes; (b) linearizability is judged in real time, and processes on one host share
one monotonic clock, while two machines' clocks cannot order operations milliseconds apart.

Each client drives v2 (and v3 through the JSON gateway) on shared keys under a fresh folder
(/calicolab-history/<id>, outside /calico and /docker, so the rehearsal's keyspace diff is
untouched) and watches the v2 folder from the index at which it was created. When the run is
over: the writers stop, the watchers drain, every key is read with quorum from every member
(the final reads), and the history is checked: linearizable per key and API, no acknowledged
write lost, local reads sane, watches complete and in order. The folder is removed.

The test-only plant `--plant history=lost-write` (cfg.plants.history) makes a client replace one
acknowledged write behind the history's back, which every check above must catch (the e2e check
then fails on purpose).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from calicolab.core import versions
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.core.polling import Timeout, wait_for
from calicolab.etcd_history import etcd_client, linearizability, operations
from calicolab.stack import etcd_tls

ROOT_FOLDER = "/calicolab-history"
KEYS = 5  # per API; shared by both members' clients, so their operations race on each key
INTERVAL = 0.1  # seconds between one client's operations: ~8 a second each, light on a 2-CPU lab
def v3_available(version: str) -> bool:
    # The JSON gateway exists from 3.3 (/v3beta) on every version this stack can run; v3 keys
    # are a keyspace apart from v2's, so the two APIs are two sets of registers.
    return versions.parse(version)[:2] >= (3, 3)


@dataclass
class HistoryReport:
    """What the checks found; to_json goes into reports/upgrade.json."""

    ops: dict[str, dict[str, int]] = field(default_factory=dict)  # per API: ok / fail / info / total
    linearizable: dict[str, bool] = field(default_factory=dict)
    explanation: dict[str, str] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    local_reads: list[str] = field(default_factory=list)
    watch: list[str] = field(default_factory=list)
    watch_events: int = 0
    notes: list[str] = field(default_factory=list)
    check_seconds: float = 0.0
    stop_seconds: float = 0.0  # what recording adds to a rehearsal: stopping, draining, final reads, checks
    raw: str = ""  # the history file (JSON)
    failure_text: str = ""  # the offending sub-histories, readable
    # Clients that ended on their own before they were told to stop: "<node>: exit N: <stderr's last
    # line>". Their operations are missing from the history; this says why.
    clients_ended: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = [f"etcd {api} history not linearizable" for api, ok in self.linearizable.items() if not ok]
        if self.lost:
            found.append(f"{len(self.lost)} acknowledged write(s) lost")
        if self.local_reads:
            found.append(f"{len(self.local_reads)} impossible local read(s)")
        if self.watch:
            found.append(f"watch: {len(self.watch)} problem(s)")
        if found and self.failure_text:
            found.append(f"see {self.failure_text}")
        return found

    def table_rows(self) -> list[tuple[str, ...]]:
        rows = []
        for api, counts in self.ops.items():
            rows.append((api, str(counts["total"]), str(counts["ok"]), str(counts["fail"]), str(counts["info"]),
                         "yes" if self.linearizable.get(api) else "NO",
                         str(sum(1 for line in self.lost if f" {api} " in line))))
        return rows

    def to_json(self) -> dict[str, object]:
        return {"ops": self.ops, "linearizable": self.linearizable, "lost_acknowledged_writes": len(self.lost),
                "local_read_problems": len(self.local_reads), "watch_problems": len(self.watch),
                "watch_events": self.watch_events, "check_seconds": self.check_seconds,
                "stop_seconds": self.stop_seconds,
                "history": self.raw, "failures": self.failure_text, "notes": self.notes,
                "clients_ended": self.clients_ended}


def evaluate(hist: operations.History, final: dict[str, operations.Op]) -> HistoryReport:
    """Every check over a recorded history (also what the e2e grading re-runs on the raw file)."""
    started = time.monotonic()
    report = HistoryReport(notes=list(hist.notes))
    texts: list[str] = []
    for api in sorted({op.api for op in hist.ops}):
        ops = hist.of_api(api)
        report.ops[api] = {"total": len(ops),
                           **{k: sum(1 for o in ops if o.outcome == k) for k in ("ok", "fail", "info")}}
        verdict = linearizability.check(ops, api)
        report.linearizable[api] = verdict.ok
        report.explanation[api] = verdict.explain()
        if not verdict.ok:
            texts.append(f"== {api}: not linearizable\n{verdict.explain()}")
    report.lost = operations.lost_writes(hist.ops, final)
    report.local_reads = operations.local_read_problems(hist.of_api("v2"))
    report.watch = operations.watch_problems(hist)
    report.watch_events = sum(len(e) for e in hist.watches.values())
    for title, lines in (("acknowledged writes lost", report.lost), ("impossible local reads", report.local_reads),
                         ("watch problems", report.watch)):
        if lines:
            texts.append(f"== {title}\n" + "\n".join(lines))
    report.check_seconds = round(time.monotonic() - started, 2)
    report.failure_text = "\n\n".join(texts)  # the caller writes it to a file and names it
    return report


def final_reads(hist: operations.History) -> dict[str, operations.Op]:
    """The last answered quorum read of each key by the final readers."""
    final: dict[str, operations.Op] = {}
    for op in hist.ops:
        if (op.process.startswith("final/") and op.outcome == "ok" and op.f == "get"
                and (op.key not in final or op.invoke > final[op.key].invoke)):
            final[op.key] = op
    return final


class Recording:
    """Clients on every member from start() until stop(); stop() returns the checked report."""

    def __init__(self, cfg: ClusterConfig, folder: Path, label: str, plant: str = "") -> None:
        self.cfg, self.label, self.plant = cfg, label, plant
        self.folder = folder
        self.prefix = f"{ROOT_FOLDER}/{uuid.uuid4().hex[:12]}"
        self.v3 = v3_available(cfg.versions.etcd)
        tls = None
        if cfg.etcd_tls:
            pki = etcd_tls.pki_folder(cfg)
            tls = (str(pki / "ca.pem"), str(pki / "client.pem"), str(pki / "client-key.pem"))
        self.endpoints = {n.name: etcd_client.Endpoint(f"{cfg.etcd_scheme}://{n.ip}:2379", tls) for n in cfg.nodes}
        self.tls = tls
        self.procs: dict[str, subprocess.Popen] = {}
        self.outputs: dict[str, Path] = {}

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob(f"{self.label}-*"):  # an earlier run's files must not be read as this one's
            old.unlink()
        first = next(iter(self.endpoints.values()))
        try:
            made = first.request("PUT", "/v2/keys" + urllib.parse.quote(f"{self.prefix}/v2"),
                                 "dir=true", "application/x-www-form-urlencoded")
        except (etcd_client.NotSent, etcd_client.Unknown) as err:
            raise UserError(f"etcd history: cannot reach {first.url} from this host ({err}): the clients "
                            "need the nodes' client URLs on the private network") from None
        if made.status not in (200, 201):
            raise UserError(f"etcd history: creating {self.prefix}/v2 on {first.url} answered "
                            f"{made.status} {made.body}")
        watch_from = int(made.body["node"]["modifiedIndex"]) + 1
        script = Path(etcd_client.__file__)
        for name, ep in self.endpoints.items():
            out = self.folder / f"{self.label}-{name}.jsonl"
            out.write_text("")
            args = [sys.executable, str(script), "--endpoint", ep.url, "--name", name, "--prefix", self.prefix,
                    "--keys", str(KEYS), "--out", str(out), "--watch-from", str(watch_from),
                    "--interval", str(INTERVAL)]
            if self.v3:
                args.append("--v3")
            if self.tls:
                args += ["--tls", ",".join(self.tls)]
            if self.plant and name == self.cfg.nodes[0].name:  # one planted fault is enough
                args += ["--plant", self.plant]
            self.outputs[name] = out
            self.procs[name] = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                stderr=open(self.folder / f"{self.label}-{name}.stderr", "w"))  # noqa: SIM115

    def _said(self, name: str, text: str) -> bool:
        return f"{name}: {text}" in self.outputs[name].read_text()

    def ended_early(self) -> list[str]:
        """The clients that exited before stop() signalled them, with their last stderr line."""
        ended = []
        for name, proc in self.procs.items():
            if proc.poll() is None:
                continue
            err = (self.folder / f"{self.label}-{name}.stderr").read_text(errors="replace").strip().splitlines()
            ended.append(f"{name}: exit {proc.returncode}: {err[-1] if err else 'nothing on stderr'}")
        return ended

    def stop(self) -> HistoryReport:
        started = time.monotonic()
        ended = self.ended_early()
        try:
            for proc in self.procs.values():
                proc.send_signal(signal.SIGTERM)
            # A client that does not stop is killed below; its open operations stay indeterminate.
            with contextlib.suppress(Timeout):
                wait_for(lambda: all(self._said(n, "writers stopped") or p.poll() is not None
                                     for n, p in self.procs.items()), bool, "etcd clients' writers stopped",
                         timeout=etcd_client.TIMEOUT * 4)
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + etcd_client.DRAIN_DEADLINE + 5
            for proc in self.procs.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.kill()
        final_path = self.folder / f"{self.label}-final.jsonl"
        final_path.write_text("")
        rec = etcd_client.Recorder(str(final_path))
        keys = [f"{self.prefix}/{api}/k{i}" for api in (("v2", "v3") if self.v3 else ("v2",)) for i in range(KEYS)]
        for name, ep in self.endpoints.items():
            reader = etcd_client.Client(ep, rec, f"final/{name}")
            for key in keys:
                reader.run(key.split("/")[-2], "get", key)
        rec.close()
        hist = operations.load([*self.outputs.values(), final_path])
        raw = self.folder / f"{self.label}-history.json"
        operations.dump(hist, raw)
        report = evaluate(hist, final_reads(hist))
        report.raw = str(raw)
        report.clients_ended = ended
        if report.failure_text:
            text_path = self.folder / f"{self.label}-history-failures.txt"
            text_path.write_text(report.failure_text + "\n")
            report.failure_text = str(text_path)
        self._clean_up()
        report.stop_seconds = round(time.monotonic() - started, 1)
        return report

    def _clean_up(self) -> None:
        ep = next(iter(self.endpoints.values()))
        try:
            ep.request("DELETE", "/v2/keys" + urllib.parse.quote(self.prefix) + "?recursive=true&dir=true")
            if self.v3:
                key = etcd_client._b64(f"{self.prefix}/")
                end = etcd_client._b64(f"{self.prefix}0")  # '/' + 1: every key under the folder
                etcd_client.Client(ep, etcd_client.Recorder(os.devnull), "cleanup")._v3_call(
                    "kv/deleterange", {"key": key, "range_end": end})
        except (etcd_client.NotSent, etcd_client.Unknown, etcd_client.Definite):
            pass  # leftovers live under their own folder and change nothing the checks read


def summary(report: HistoryReport) -> str:
    lines = [f"etcd client history ({report.watch_events} watch events; checked in {report.check_seconds:.2f} s, "
             f"{report.stop_seconds:.1f} s to stop, read back and check):"]
    for api, counts in report.ops.items():
        lines.append(f"  {api}: {counts['total']} operations ({counts['ok']} ok, {counts['fail']} failed, "
                     f"{counts['info']} indeterminate): "
                     f"{'linearizable' if report.linearizable.get(api) else 'NOT linearizable'}")
    lines.append(f"  acknowledged writes lost: {len(report.lost)}; impossible local reads: "
                 f"{len(report.local_reads)}; watch problems: {len(report.watch)}")
    lines += [f"  client ended early: {line}" for line in report.clients_ended]
    lines += [f"  note: {n}" for n in report.notes if "planted" in n]
    if report.problems:
        lines.append(f"  offending sub-histories: {report.failure_text}")
    return "\n".join(lines)


def to_json_file(report: HistoryReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")

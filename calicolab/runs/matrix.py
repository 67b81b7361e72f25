"""`invoke matrix`: version lanes side by side on one machine.

Each lane is an `invoke e2e` in its own process with its own name prefix, subnet, run folder
and reports folder, so lanes never share a container, a network or a file. A lane is told all
of it on its command line (lane_command); its environment is the caller's less the caller's
cluster settings (config.lane_environ). The images are
built once before the lanes start (they share them). At the end: one JUnit set per lane in
its reports folder and a table of lanes x results x timings (also reports/matrix.json, and
reports/index.html linking every lane's run page).
"""

from __future__ import annotations

import ipaddress
import json
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from calicolab.core import config
from calicolab.core.cli_args import CLUSTER
from calicolab.core.config import SETTINGS, ClusterConfig
from calicolab.core.errors import StageFailed, UserError
from calicolab.core.paths import ROOT
from calicolab.core.tables import Column, render
from calicolab.report import pages
from calicolab.runs.lifecycle import DESTROY_POLICIES, Lifecycle
from calicolab.runs.passes import suite_passes

MATRIX_FILE = ROOT / "matrix.yaml"
LANE_SUBNETS = ipaddress.ip_network("192.168.224.0/20")  # 16 lanes: .224.0/24 ... .239.0/24
# What a lane may set: the cluster settings `invoke e2e` takes as flags. Where a lane's files go
# is the matrix's to say (the history is shared by every lane); the site's settings (mirrors,
# proxy, strict mode, budgets) are the caller's for every lane.
LANE_KEYS = set(CLUSTER) - {"prefix", "run_dir", "reports_dir"}


@dataclass
class Lane:
    name: str
    settings: dict[str, str]
    suite: str = "checks"
    idempotence: bool = True  # False: the lane skips the second provision (the report says so)
    prefix: str = ""
    subnet: str = ""
    # filled by the run
    rc: int | None = None
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    tests: dict[str, int] = field(default_factory=dict)
    calico: str = "unknown"  # which Calico the lane tested: upstream | double
    last_line: str = ""
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def run_dir(self, base: ClusterConfig) -> Path:
        return base.run_path / "lanes" / self.name

    def reports_dir(self, base: ClusterConfig) -> Path:
        return base.reports_path / "lanes" / self.name

    def label(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.settings.items()))
        skipped = "" if self.idempotence else ", no idempotence pass"
        return f"{shown or 'defaults'}; suite {self.suite}{skipped}"


def parse_lanes(spec: str, path: Path = MATRIX_FILE) -> list[Lane]:
    """A lane set named in matrix.yaml, or lanes written inline:
    'etcd=3.3.25,docker=20.10.5,suite=upgrade;etcd=3.5.16'."""
    if "=" in spec:
        raw = []
        for i, part in enumerate(p for p in spec.split(";") if p.strip()):
            items = dict(kv.split("=", 1) for kv in part.split(",") if "=" in kv)
            items.setdefault("name", f"lane{i + 1}")
            raw.append(items)
    else:
        try:
            sets = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise UserError(f"cannot read {path} ({err}): restore it from git") from None
        if spec not in sets:
            raise UserError(f"unknown lane set {spec!r}: use one of {', '.join(sets)} (matrix.yaml) "
                            "or write lanes inline, e.g. 'etcd=3.3.25;etcd=3.5.16'")
        raw = sets[spec]
    lanes = []
    for item in raw:
        item = {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in item.items()}
        name = item.pop("name", "")
        suite = item.pop("suite", "checks")
        idempotence = item.pop("idempotence", "true")
        if idempotence not in ("true", "false"):
            raise UserError(f"lane {name or '?'}: idempotence {idempotence!r}: use true or false")
        unknown = set(item) - LANE_KEYS
        if unknown:
            raise UserError(f"lane {name or '?'}: unknown setting(s) {', '.join(sorted(unknown))}: "
                            f"use {', '.join(sorted(LANE_KEYS))}, name, suite, idempotence")
        lanes.append(Lane(name, item, suite, idempotence == "true"))
    names = [lane.name for lane in lanes]
    if not lanes or len(set(names)) != len(names) or not all(names):
        raise UserError(f"lanes need distinct names (seen: {names})")
    return lanes


def plan(base: ClusterConfig, lanes: list[Lane]) -> list[Lane]:
    """Give each lane its prefix and subnet and validate its configuration before anything starts."""

    subnets = list(LANE_SUBNETS.subnets(new_prefix=24))
    if len(lanes) > len(subnets):
        raise UserError(f"{len(lanes)} lanes: at most {len(subnets)} run side by side")
    for i, lane in enumerate(lanes):
        lane.prefix = f"{base.prefix}-{lane.name}"[:31].rstrip("-").lower().replace(".", "-")
        lane.subnet = lane.settings.pop("subnet", "") or str(subnets[i])
        suite_passes(lane.suite)
        try:
            config.load({**lane.settings, "subnet": lane.subnet, "prefix": lane.prefix}, environ={})
        except UserError as err:
            raise UserError(f"lane {lane.name}: {err}") from None
    return lanes


def lane_command(base: ClusterConfig, lane: Lane, destroy: str) -> list[str]:
    """The lane's `invoke e2e`, every value of the lane on its command line: its settings, where
    its files go, its name on the run page, and the one history of all lanes."""
    cmd = [sys.executable, "-m", "invoke", "e2e", "--suite", lane.suite, "--destroy", destroy,
           "--lane", lane.name, "--prefix", lane.prefix, "--subnet", lane.subnet,
           "--run-dir", str(lane.run_dir(base)), "--reports-dir", str(lane.reports_dir(base)),
           "--history-file", str(base.history_path)]
    for key, value in sorted(lane.settings.items()):
        cmd += [SETTINGS[key].option, value]
    return cmd if lane.idempotence else [*cmd, "--no-idempotence"]


def _run_lane(base: ClusterConfig, lane: Lane, destroy: str, say: Callable[[str], None]) -> None:
    out_dir = lane.reports_dir(base)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "output.log"
    cmd = lane_command(base, lane, destroy)
    start = time.monotonic()
    # The lane writes to its log file, not to a pipe: if this process dies, the lane still
    # finishes (and destroys its cluster) instead of failing on a broken pipe.
    with log.open("w") as out:
        lane.proc = subprocess.Popen(cmd, cwd=ROOT, env=config.lane_environ(), stdout=out, stderr=subprocess.STDOUT,
                                     text=True, stdin=subprocess.DEVNULL,
                                     # Own session: a terminal's Ctrl-C reaches the lanes once,
                                     # forwarded by run_matrix, never twice mid-destroy.
                                     start_new_session=True)
    with log.open() as reader:
        while True:
            line = reader.readline()
            if line:
                _show(lane, line, say)
            elif lane.proc.poll() is not None:
                for rest in reader:
                    _show(lane, rest, say)
                break
            else:
                time.sleep(0.2)  # following a growing file
    lane.rc = lane.proc.returncode
    lane.seconds = round(time.monotonic() - start, 1)
    _collect(lane, out_dir)


def _show(lane: Lane, line: str, say: Callable[[str], None]) -> None:
    stripped = line.rstrip()
    if stripped.startswith(("==>", "<==", "error:", "failed:")):
        say(f"[{lane.name}] {stripped}")
    if stripped:
        lane.last_line = stripped


def _collect(lane: Lane, out_dir: Path) -> None:
    try:
        timings = json.loads((out_dir / "timings.json").read_text())
        lane.stages = {s["name"]: s["seconds"] for s in timings.get("stages", [])}
        lane.calico = timings.get("calico", "unknown")
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        lane.stages = {}
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for xml in sorted(out_dir.glob("e2e*.xml")):
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError:
            continue
        for suite in [root] if root.tag == "testsuite" else root.findall("testsuite"):
            for key in counts:
                counts[key] += int(suite.get(key, 0))
    lane.tests = counts


def run_matrix(base: ClusterConfig, spec: str, destroy: str, say: Callable[[str], None],
               parallel: int = 0) -> list[Lane]:

    if destroy not in DESTROY_POLICIES:
        raise UserError(f"unknown destroy policy {destroy!r}: use {', '.join(DESTROY_POLICIES)}")
    lanes = plan(base, parse_lanes(spec))
    say(f"matrix: {len(lanes)} lane(s), {parallel or len(lanes)} at a time")
    for lane in lanes:
        say(f"  {lane.name}: {lane.label()} (prefix {lane.prefix}, subnet {lane.subnet})")
    if base.is_lab and any(lane.settings.get("provider", base.provider) == "docker" for lane in lanes):
        # Build the shared images once, before the lanes race for them.
        builder = Lifecycle(base, say=lambda m: say(f"[images] {m}"))
        builder.box()
    start = time.monotonic()
    limit = threading.Semaphore(parallel or len(lanes))

    stopping = threading.Event()

    def worker(lane: Lane) -> None:
        with limit:
            if not stopping.is_set():  # a lane still waiting for its turn never starts
                _run_lane(base, lane, destroy, say)

    threads = [threading.Thread(target=worker, args=(lane,), name=lane.name) for lane in lanes]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    except BaseException:  # Ctrl-C or a termination: every lane still cleans up after itself
        say("interrupted: asking every lane to stop; each destroys its own cluster (--destroy policy)")
        stopping.set()
        for lane in lanes:
            if lane.proc and lane.proc.poll() is None:
                lane.proc.send_signal(signal.SIGINT)
        # Wait on the processes themselves: a join interrupted by the signal cannot be trusted.
        for lane in lanes:
            if lane.proc:
                lane.proc.wait()
        for t in threads:  # let each lane's last lines (its destroy) reach the output
            t.join(timeout=10)
        for lane in lanes:
            if lane.rc is None and lane.proc:
                lane.rc = lane.proc.returncode
        write_reports(base, lanes, round(time.monotonic() - start, 1), say)
        raise
    wall = round(time.monotonic() - start, 1)
    say("")
    say(table(lanes, wall))
    write_reports(base, lanes, wall, say)
    failed = [lane.name for lane in lanes if lane.rc != 0]
    if failed:
        raise StageFailed(f"lane(s) failed: {', '.join(failed)}; see reports/lanes/<lane>/output.log")
    return lanes


def table(lanes: list[Lane], wall: float) -> str:
    head = ("lane", "versions / suite", "calico", "result", "tests",
            *(Column(name, align="right") for name in ("up", "provision", "verify", "total")))
    rows: list[tuple[str, ...]] = []
    for lane in lanes:
        t = lane.tests
        bad = t.get("failures", 0) + t.get("errors", 0)
        tests = f"{t.get('tests', 0) - bad - t.get('skipped', 0)}/{t.get('tests', 0)}"
        if t.get("skipped"):
            tests += f" ({t['skipped']} skipped)"
        result = "passed" if lane.rc == 0 else f"FAILED (rc {lane.rc})"
        rows.append((lane.name, lane.label(), lane.calico, result, tests,
                     *(f"{lane.stages.get(s, 0):.1f}" for s in ("up", "provision", "verify")),
                     f"{lane.seconds:.1f}"))
    return "\n".join([render(head, rows), f"wall clock for all lanes: {wall:.1f} s",
                      "calico: double = the project's Calico double (not real Calico); upstream = real calico/node"])


def write_reports(base: ClusterConfig, lanes: list[Lane], wall: float, say: Callable[[str], None]) -> None:
    """matrix.json and the index page linking every lane's run page."""
    target = write_json(base, lanes, wall)
    page = pages.write_index(base.reports_path, "matrix", json.loads(target.read_text()))
    say(f"matrix page: {page}")


def write_json(base: ClusterConfig, lanes: list[Lane], wall: float) -> Path:
    base.reports_path.mkdir(parents=True, exist_ok=True)
    target = base.reports_path / "matrix.json"
    target.write_text(json.dumps({"wall_seconds": wall, "lanes": [
        {"name": lane.name, "settings": lane.settings, "suite": lane.suite, "idempotence": lane.idempotence,
         "prefix": lane.prefix, "subnet": lane.subnet, "calico": lane.calico, "rc": lane.rc,
         "seconds": lane.seconds, "stages": lane.stages, "tests": lane.tests,
         "reports": str(lane.reports_dir(base))} for lane in lanes]}, indent=2) + "\n")
    return target

"""The named stages box -> up -> provision -> idempotence -> verify -> destroy.

Each stage is safe to repeat, keeps its state in the run folder, and is timed into the run
report; asking for a later stage runs the missing earlier ones. Whatever way a task ends (passed,
a failed stage, a refusal before the first stage, Ctrl-C, SIGTERM, a crash), finish() writes the
lifecycle JUnit, timings.json, the run JSON and the run page (calicolab/report/pages.py), and an
e2e run appends its line to the history (calicolab/report/history.py). Tasks typed one after the
other (`invoke up`, `provision`, `verify`, `destroy`) are one run: begin() joins the run open in
the run folder, and the record and page speak for all its tasks (calicolab/report/run_record.py).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from calicolab.core import config, deadlines, nodes, state
from calicolab.core.config import ClusterConfig, write_effective
from calicolab.core.errors import StageFailed, Terminated, UserError
from calicolab.core.remote import Node
from calicolab.core.state import calico_label
from calicolab.infra import images, kvm, lab, libvirt_host, mirror, preflight, vm_box, vm_debian
from calicolab.infra.vagrant_env import VagrantCluster
from calicolab.report import artifacts, history, leak_scan, pages, run_data, run_record
from calicolab.report.junit import RunReport, StageRecord
from calicolab.runs import passes
from calicolab.stack import upstream
from calicolab.stack.etcd_tls import pki_folder
from provision import run as provisioning

DESTROY_POLICIES = ("always", "passing", "never")
# Stages whose failure is worth the nodes' journals, etcd's view, BGP, routes... (artifacts.py)
ARTIFACT_STAGES = ("provision", "idempotence", "verify")
# Tasks that start a run of their own, and tasks that close the run (run_record.py).
STARTS_RUN = ("e2e",)
CLOSES_RUN = ("destroy", "e2e")


class Lifecycle:
    def __init__(self, cfg: ClusterConfig, say: Callable[[str], None] = print, lane: str = "") -> None:
        self.cfg = cfg
        self.say = say
        # Deadlines for this process and, through cluster.json (_effective), the e2e tests it
        # starts: longer under emulation.
        self.deadline_factor = deadlines.resolve(cfg.time_scale, kvm.emulated(cfg.provider))
        deadlines.apply(self.deadline_factor)
        self.vagrant = VagrantCluster(cfg)
        # Which Calico is known once provisioning chose it (or from the running cluster's state).
        self.report = RunReport(cluster=cfg.prefix, provider=cfg.provider)
        self._nodes: list[Node] | None = None
        self._done: set[str] = set()  # stages already run by this lifecycle
        # What the run page says about the lane (suite, destroy policy, ...); `e2e` marks a whole
        # lifecycle, the one kind of run the history compares.
        self.lane: dict[str, object] = {
            # A matrix names its lanes (`invoke e2e --lane`); a lone run is known by its prefix.
            "name": lane or cfg.prefix, "prefix": cfg.prefix,
            "subnet": cfg.subnet, "provider": cfg.provider, "etcd_tls": str(cfg.etcd_tls).lower()}
        self.command = ""
        self.run_id: str | None = None  # the run this task belongs to (begin())
        self._task_no: int | None = None  # this task's place in the run's record, once written

    # -- the run this task belongs to -------------------------------------------------------
    def begin(self, task: str) -> None:
        """This task joins the run open in the run folder, or starts a new one: the reports folder's
        files of an earlier run are moved aside first, so none of them is taken for this run's."""
        self.command = task
        self.report.started = time.time()
        folder = self.cfg.reports_path
        open_id = state.read(self.cfg).get("run_id")
        if task not in STARTS_RUN and open_id and run_record.joins(folder, open_id):
            self.run_id = open_id
            return
        self.run_id = run_record.new_run_id()
        try:
            moved = run_record.move_aside(folder)
        except OSError as err:  # an unwritable folder is said when the reports are written
            self.say(f"    earlier run's reports not moved aside: {folder} ({err.strerror})")
            moved = None
        if moved:
            self.say(f"    an earlier run's reports moved to {moved}")
        # An unusable run folder is refused by the first stage's checks, in one line.
        with contextlib.suppress(OSError):
            state.update(self.cfg, run_id=self.run_id)

    # -- bookkeeping -------------------------------------------------------------------
    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        record = StageRecord(name)
        self.report.stages.append(record)
        self.say(f"==> {name}")
        start = time.monotonic()
        record.started = round(time.time(), 2)
        try:
            yield
            record.status = "passed"
        except BaseException as err:
            record.status = "failed"
            record.detail = str(err) or err.__class__.__name__
            if name in ARTIFACT_STAGES and not isinstance(err, KeyboardInterrupt):
                self._collect_artifacts(record)
            raise
        finally:
            record.seconds = round(time.monotonic() - start, 1)
            self.say(f"<== {name}: {record.status} in {record.seconds:.1f} s")

    def _collect_artifacts(self, record: StageRecord) -> None:
        self.say(f"    {record.name} failed: collecting artifacts from the nodes")
        got = artifacts.collect_quietly(self.cfg, f"stage-{record.name}", state.read(self.cfg).get("ssh"))
        if got:
            record.attachments = [str(p) for p in got.files]
            for note in got.notes:
                self.say(f"    {note}")
            self.say(f"    artifacts: {got.folder}")

    def finish(self) -> None:
        """Print the timing table and write the lifecycle JUnit, timings JSON, the run JSON and
        page, and the history line; fail loudly when private key material shows up in the reports
        or the run's logs."""
        # Called from `finally:` blocks: a failure already on its way out stays the error.
        unwinding = sys.exc_info()[0] is not None
        verdict, error, code = outcome(sys.exc_info()[1], self.report)
        if self.report.calico == "unknown":
            run_state = state.read(self.cfg)
            self.report.calico = run_state.get("calico_source", "unknown")
            self.report.calico_seen = run_state.get("calico_seen", "")
        leaks = self._scan_for_secrets()
        if verdict != "passed" and not any(s.status == "failed" for s in self.report.stages):
            # Refused or stopped outside any stage: the JUnit still says so (a refusal with no
            # test case would look like nothing ran, and CI would upload nothing to look at).
            name = "preflight" if not [s for s in self.report.stages if s.name != "destroy"] else "lifecycle"
            # A refusal is its own result: a run that joined it is not thereby failed.
            record = StageRecord(name, status="refused" if verdict == "refused" else "failed", detail=error,
                                 started=round(time.time(), 2))
            self.report.stages.insert(0 if name == "preflight" else len(self.report.stages), record)
        self.say("")
        self.say(self.report.table())
        try:
            xml_path, json_path = self.report.write(self.cfg.reports_path)
            self.say(f"reports: {xml_path}, {json_path}")
        except OSError as err:  # an unwritable reports folder is bad input, not a crash
            self.say(f"reports not written: {self.cfg.reports_path} ({err.strerror})")
            if not unwinding:
                raise UserError(f"{self.cfg.reports_path} cannot be written ({err.strerror}): choose another "
                                f"folder with --reports-dir or {config.SETTINGS['reports_dir'].env}") from None
        if leaks and verdict == "passed":
            verdict, error, code = "failed", f"private key material in {len(leaks)} place(s)", 1
        self._write_page(verdict, error, code, unwinding)
        if leaks:
            self.say("!!! SECRETS IN THE REPORTS OR LOGS: private key material found in:")
            for finding in leaks:
                self.say(f"!!!   {finding}")
            if not unwinding:
                raise StageFailed(f"private key material in {len(leaks)} place(s), first {leaks[0]}: "
                                  "remove it and find what wrote it")

    def run_facts(self, verdict: str, error: str, code: int) -> dict[str, object]:
        """The lifecycle's part of the run JSON (calicolab/report/run_data.py); the rest is read
        from the files the run wrote."""
        asked = dict(vars(self.cfg.versions))
        live = state.read(self.cfg).get("effective", {}).get("versions", {})  # an upgrade moves them
        finished = time.time()
        return {
            "verdict": verdict, "exit": {"code": code, "error": error},
            "command": self.command, "started": round(self.report.started, 2), "finished": round(finished, 2),
            "seconds": round(finished - self.report.started, 1), "cluster": self.cfg.prefix,
            "provider": self.cfg.provider, "calico": self.report.calico, "calico_seen": self.report.calico_seen,
            "calico_label": calico_label(self.report.calico), "lane": dict(self.lane),
            "versions": {"asked": asked, "after": {**asked, **{k: str(v) for k, v in live.items() if k in asked}}},
            "machine": run_data.machine(), "pass_names": {p.junit: p.name for suite in passes.SUITES.values()
                                                          for p in suite},
            "stages": [dict(vars(s)) for s in self.report.stages]}

    def _write_page(self, verdict: str, error: str, code: int, unwinding: bool) -> None:
        folder = self.cfg.reports_path
        closes = self.command in CLOSES_RUN or not self.command  # a lifecycle no task began is a run alone
        if self.run_id is None:  # ... that joins no other (a benchmark's lifecycles)
            self.run_id = run_record.new_run_id()
        try:
            data, self._task_no, page = pages.write_task(folder, self.run_facts(verdict, error, code), self.run_id,
                                                         self.command or "lifecycle", self._task_no, closes)
            self.run_id = data["run_id"]
            if len(data.get("tasks", [])) > 1:  # the lifecycle JUnit and timings of the whole run
                whole_run_report(data, folder).write(folder)
            if closes and self.command and state.read(self.cfg).get("run_id") == self.run_id:
                state.clear(self.cfg, "run_id")
            self.say(f"run page: {page}" + (f" ({data['verdict']}: {len(data['tasks'])} tasks of this run)"
                                            if len(data.get("tasks", [])) > 1 else ""))
            if self.command == "e2e":
                history.append(self.cfg.history_path, history.entry(data, folder))
        except OSError as err:
            self.say(f"run page not written: {folder} ({err.strerror})")
        except Exception:  # a fault in the page must not hide the run's own outcome
            self.say("run page not written: " + traceback.format_exc().strip().splitlines()[-1])
            if not unwinding:
                raise

    def _scan_for_secrets(self) -> list[leak_scan.Finding]:
        # The reports folder whole, plus the run folder's logs (its key files are the secrets).
        bodies = leak_scan.key_bodies(self.cfg.run_path)
        leaks = leak_scan.scan([self.cfg.reports_path], bodies)
        leaks += leak_scan.scan([self.cfg.run_path], bodies, only="*.log")
        if leaks:
            self.report.stages.append(StageRecord(
                "secrets scan", status="failed",
                detail="private key material found in: " + "; ".join(map(str, leaks[:20]))))
        return leaks

    def _effective(self, extra: dict[str, object]) -> None:
        """cluster.json anew: this task's configuration, the provider's facts kept in the state,
        and the deadline factor the child processes apply (e2e/conftest.py)."""
        data = dict(state.read(self.cfg).get("effective", {}))
        data.update(extra)
        data[deadlines.EFFECTIVE_KEY] = self.deadline_factor
        state.update(self.cfg, effective=data)
        write_effective(self.cfg, data)

    # -- stages ------------------------------------------------------------------------
    def box(self) -> None:
        if "box" in self._done:
            return
        self._done.add("box")
        with self.stage("box"):
            preflight.check_run_dir(self.cfg)
            if self.cfg.is_lab:
                preflight.check_lab_tools()
                built = images.build_all(self.cfg, lambda m: self.say(f"    {m}"), self._needs_double())
                self._done.add("node-images")  # build_all saved them
                self._effective({"images": built, **lab.provider_settings(self.cfg, built)})
                return
            # Every provider gets the project's images from this machine, over SSH.
            self.node_images()
            if self.cfg.is_debian_vm:
                built = vm_debian.build_box(self.cfg, lambda m: self.say(f"    {m}"), self.vagrant.env)
                self._effective({"images": {"vm_box": built.name}, **lab.provider_settings(self.cfg, {}),
                                 **libvirt_host.vagrant_settings(self.cfg, kvm.libvirt_driver(), kvm.cpu_model())})
            else:
                vm_box.build_box(self.cfg, self.cfg.provider, lambda m: self.say(f"    {m}"), self.vagrant.env)
                extra = (libvirt_host.vagrant_settings(self.cfg, kvm.libvirt_driver(), kvm.cpu_model())
                         if self.cfg.provider == "libvirt" else {})
                self._effective({"images": {"vm_box": f"{self.cfg.prefix}/centos7"},
                                 **lab.provider_settings(self.cfg, {}), **extra})

    def _needs_double(self) -> bool:
        """busybox and the double are copied only when the double runs; unknown yet (`invoke
        box` alone): made anyway."""
        return state.read(self.cfg).get("calico_source") != "upstream"

    def node_images(self) -> None:
        """The images provisioning and the checks copy to the nodes (the probe; busybox and
        the double when the double runs), built and saved on this machine once per lifecycle:
        a cluster already up from an earlier command still finds them."""
        if "node-images" in self._done:
            return
        self._done.add("node-images")
        images.side_loaded(self.cfg, lambda m: self.say(f"    {m}"), self._needs_double())

    def up(self) -> None:
        if "up" in self._done:
            return
        self._done.add("up")
        if self.deadline_factor != 1:
            self.say(f"    deadlines x{self.deadline_factor:g} (time_scale {self.cfg.time_scale}: "
                     f"{'software emulation' if kvm.emulated(self.cfg.provider) else 'as set'})")
        if self.vagrant.is_running():
            self.say("==> up: cluster already running")
            self._remember_targets()
            return
        # Before the box: a wrong subnet, a missing tool or an upstream part that cannot be had is
        # told at once, not after image builds.
        self._remember_calico(preflight.before_up(self.cfg))
        self.box()
        with self.stage("up"):
            if self.cfg.provider == "libvirt":
                # Started here, not in preflight: nothing runs until a box exists to boot.
                libvirt_host.ensure_daemons(self.cfg, lambda m: self.say(f"    {m}"))
                libvirt_host.ensure_pool(self.cfg, lambda m: self.say(f"    {m}"))
            self.vagrant.up(lambda line: self.say(f"    {line}"))
            self._remember_targets()

    def _remember_calico(self, decision) -> dict[str, str]:
        facts = {"calico_source": decision.source, "calico_reason": decision.reason}
        state.update(self.cfg, facts=facts, calico_source=decision.source)
        # What is asked of the source; which Calico ran is read off the node after provisioning.
        self.say(f"    calico source: {decision.source}: {decision.reason}")
        return facts

    def _remember_targets(self) -> None:
        targets = self.vagrant.ssh_targets()
        state.update(self.cfg, ssh={k: vars(v) for k, v in targets.items()})

    def nodes(self) -> list[Node]:
        if self._nodes is None:
            self._nodes = list(nodes.from_run(self.cfg).values())
        return self._nodes

    def provision(self, stage_name: str = "provision") -> list:
        if stage_name == "provision":
            self.up()
        with self.stage(stage_name):
            facts = state.read(self.cfg).get("facts") or {}
            if not facts.get("calico_source"):
                facts = self._remember_calico(preflight.calico_decision(self.cfg))
            # The provisioning path; which Calico was tested is set below from what runs.
            self.say(f"    calico source: {facts['calico_source']}")
            self.node_images()
            changes = provisioning.provision(self.cfg, self.nodes(), facts, lambda m: self.say(m))
            changed = [c for c in changes if c.changed]
            self.say(f"    {len(changed)} of {len(changes)} steps changed something"
                     if changed else f"    no changes ({len(changes)} steps checked)")
            self.say(f"    slowest: {provisioning.slowest(changes)}")
            # Which Calico was tested is what runs, not what was asked for (read once: the
            # idempotence pass changes nothing, or fails).
            seen = upstream.inspect_running(self.nodes()[0]) if stage_name == "provision" else None
            if seen and seen.source != "unknown":
                self.report.calico, self.report.calico_seen = seen.source, seen.text
                state.update(self.cfg, calico_source=seen.source, calico_seen=seen.text)
                self.say(f"    calico running: {seen.text}")
            state.update(self.cfg, provisioned=True)
            if stage_name == "idempotence" and changed:
                raise StageFailed("second provision changed: " +
                                  "; ".join(f"{c.node} {c.step}" for c in changed))
            return changes

    def verify(self, pytest_args: list[str] | None = None, suite: str = "checks",
               command_log: Path | None = None) -> None:
        """The suite's passes on the running cluster; command_log (the bench's) records every
        node command of the passes under that folder."""
        self.lane.update(suite=suite, pytest_args=" ".join(pytest_args or []))
        test_passes = passes.suite_passes(suite)
        if not state.read(self.cfg).get("provisioned") or not self.vagrant.is_running():
            self.provision()
        extra = pytest_args or []
        with self.stage("verify"):
            # The e2e tests read this task's configuration from the run folder: its live settings
            # (budgets, artifact limit, reports folder) and the deadline factor.
            self._effective({})
            self.node_images()  # the fault pass and the rehearsals copy the probe
            failed = []
            for test_pass in test_passes:
                self.say(f"    {test_pass.name}: pytest e2e/{{{','.join(test_pass.folders)}}}")
                rc = passes.run_pytest(self.cfg, test_pass, extra, command_log=command_log)
                ok, note = passes.verdict(test_pass, rc, extra)
                if note:
                    self.say(f"    {note}")
                if not ok:
                    failed.append(f"{note}, {self.cfg.reports_path / test_pass.junit}")
            if failed:
                raise StageFailed("e2e tests failed: " + "; ".join(failed))

    def destroy(self, leftovers: bool = False) -> None:
        with self.stage("destroy"):
            nodes.close_all(self._nodes or [])
            self._nodes = None
            self.vagrant.destroy(lambda line: self.say(f"    {line}"), leftovers)
            state.clear(self.cfg, "ssh", "provisioned", "facts", "calico_source", "calico_seen")
            if leftovers:  # `invoke destroy`: the local mirror of this run folder goes too
                mirror.stop(self.cfg, say=lambda m: self.say(f"    {m}"))
            # The cluster's CA and keys die with it (a new cluster makes new ones).
            shutil.rmtree(pki_folder(self.cfg), ignore_errors=True)

    def e2e(self, destroy: str, pytest_args: list[str] | None = None, suite: str = "checks",
            idempotence: bool = True) -> bool:
        """The whole sequence; the destroy policy is enforced whatever happens, and the reports
        are written whatever happens (a refused flag too)."""
        self.begin("e2e")
        self.lane.update(suite=suite, destroy=destroy, pytest_args=" ".join(pytest_args or []),
                         idempotence=str(idempotence).lower())
        try:
            passes.suite_passes(suite)  # refuse an unknown suite before anything starts
            if destroy not in DESTROY_POLICIES:
                raise UserError(f"unknown destroy policy {destroy!r}: use {', '.join(DESTROY_POLICIES)}")
            return self._sequence(destroy, pytest_args, suite, idempotence)
        finally:
            self.finish()

    def _sequence(self, destroy: str, pytest_args: list[str] | None, suite: str, idempotence: bool) -> bool:
        passed = False
        try:
            self.up()  # checks before up, then the box, then up (box and up only when not running)
            self.provision()
            if idempotence:
                self.provision("idempotence")
            else:
                self.say("==> idempotence: skipped (--no-idempotence)")
                self.report.stages.append(StageRecord("idempotence", status="skipped", detail="--no-idempotence"))
            self.verify(pytest_args, suite)
            passed = True
        finally:
            if destroy == "never" or (destroy == "passing" and not passed):
                self.say(f"==> destroy: skipped (--destroy {destroy}); reach the nodes with "
                         f"`invoke ssh {self.cfg.nodes[0].name}`, remove with `invoke destroy`")
                self.report.stages.append(StageRecord("destroy", status="skipped", detail=f"--destroy {destroy}"))
            else:
                self.destroy()
        return passed


def outcome(err: BaseException | None, report: RunReport) -> tuple[str, str, int]:
    """(verdict, error line, exit code) of a run ending with err (None: it returned). The exit
    code is tasks.py's for the exception; a stage that failed makes the verdict `failed` whatever
    it raised (a UserError from `vagrant up` is a failed setup, not a refused flag)."""
    failed = [s for s in report.stages if s.status == "failed"]
    if err is None:
        return ("failed", failed[0].detail, 1) if failed else ("passed", "", 0)
    text = str(err) or err.__class__.__name__
    if isinstance(err, KeyboardInterrupt):
        return "interrupted", "interrupted (Ctrl-C)", 130
    if isinstance(err, Terminated):
        return "terminated", "terminated (SIGTERM: a cancelled job)", 143
    if isinstance(err, UserError):
        return ("failed" if failed else "refused"), text, 2
    if isinstance(err, StageFailed):
        return "failed", text, 1
    return "crashed", f"{err.__class__.__name__}: {text}", 1


def reports_folder(flag: str | None, environ: dict[str, str] | None = None) -> Path:
    """Where a run's reports go when its configuration cannot even be read (the flag, the
    environment, the default): the refusal is reported there."""
    return config.fallback_reports_dir(flag, environ)


def whole_run_report(data: dict, folder: Path) -> RunReport:
    """The lifecycle JUnit and timings of a run's record: every stage of every task."""
    def stage(s: dict) -> StageRecord:
        paths = [p if Path(p).is_absolute() else str(folder / p) for p in s.get("attachments", [])]
        return StageRecord(s["name"], float(s.get("seconds") or 0), s.get("status", ""),
                           s.get("detail", ""), paths, float(s.get("started") or 0))
    return RunReport(cluster=str(data.get("cluster", "?")), provider=str(data.get("provider", "?")),
                     calico=data.get("calico", "unknown"), calico_seen=data.get("calico_seen", ""),
                     stages=[stage(s) for s in data.get("stages", [])])


def write_refusal(folder: Path, error: str, say: Callable[[str], None] = print, task: str = "") -> None:
    """The reports of a task refused before it had a configuration (a malformed flag or
    cluster.yaml): a lifecycle JUnit with one refused `preflight` case, run.json, index.html. A
    run open in that folder gets the refusal as one of its tasks; otherwise it is a run alone."""
    report = RunReport(cluster="?", provider="?",
                       stages=[StageRecord("preflight", status="refused", detail=error, started=round(time.time(), 2))])
    try:
        joined = run_record.joins(folder, None)
        if not joined:
            run_record.move_aside(folder)
        report.write(folder)
        facts = {"verdict": "refused", "exit": {"code": 2, "error": error},
                 "started": round(report.started, 2), "finished": round(time.time(), 2), "seconds": 0.0,
                 "cluster": "?", "provider": "?", "calico": "unknown", "calico_label": calico_label("unknown"),
                 "lane": {}, "versions": {}, "machine": run_data.machine(),
                 "stages": [vars(s) for s in report.stages]}
        data, _, page = pages.write_task(folder, facts, None, task or "?", None, closes=not joined)
        if joined:
            whole_run_report(data, folder).write(folder)
        say(f"run page: {page}")
    except OSError as err:
        say(f"reports not written: {folder} ({err.strerror})")

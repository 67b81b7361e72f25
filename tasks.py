"""Invoke tasks: the lifecycle of the guide's two-node cluster and the project's own checks.

    invoke e2e                  box -> up -> provision -> idempotence -> verify -> destroy
    invoke up / provision / verify / destroy / ssh node1
    invoke test                 lint + unit tests + the lab end-to-end run
    invoke config               every setting: its effective value and where it came from
    invoke report               the run page (reports/index.html) again; report.history: the runs' history

Tasks with modes are namespaces (`invoke --list`): upgrade.rolling (the default of `invoke
upgrade`), upgrade.drill, upgrade.restore; bench.lifecycle, bench.lanes, bench.checker,
bench.against-lab; mirror.start, mirror.stop, mirror.status; report.page, report.history.
Cluster flags are declared once (calicolab/core/cli_args.py), their help and defaults once in
the table of settings (calicolab/core/config.py, docs/settings.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from invoke import Collection

from calicolab.core import config, paths, state
from calicolab.core.cli_args import CLUSTER, cli_task, renamed, whole_number
from calicolab.core.errors import StageFailed, UserError
from calicolab.core.settings_doc import write_settings_doc
from calicolab.core.state import running_config
from calicolab.core.tables import render
from calicolab.diagnose.doctor import run_doctor
from calicolab.infra import mirror as local_mirror
from calicolab.infra.host_setup import plan as setup_plan
from calicolab.infra.host_setup import setup as do_setup
from calicolab.infra.vm_preflight import vm_lane_missing
from calicolab.report import pages
from calicolab.report.history import DEFAULT_LAST
from calicolab.runs.bench import run_against_lab, run_bench, run_checker_bench, run_lane_bench
from calicolab.runs.beside import NICENESS, Beside
from calicolab.runs.lifecycle import Lifecycle, reports_folder, write_refusal
from calicolab.runs.matrix import run_matrix
from calicolab.runs.passes import suite_passes
from calicolab.runs.soak import parse_runs, run_soak
from calicolab.stack import downloads, upstream
from calicolab.upgrade.rehearsal import run_drill, run_restore, run_upgrades

Flags = dict[str, Any]  # the cluster settings given on the command line, keyed by setting
# Settings a running cluster's tasks take; the rest come from the run folder's cluster.json.
RUN_FOLDER = ("provider", "prefix", "run_dir", "reports_dir")
PLANT_HELP = ("test only, repeatable: KIND=VALUE, a fault or load planted on purpose so a check shows it "
              "catches it (docs/settings.md lists the kinds)")


def _cfg(cluster: Flags, plant: list[str] | None = None) -> config.ClusterConfig:
    return config.with_plants(running_config(config.load(cluster), cluster), config.parse_plants(plant))


def _say(message: str) -> None:
    print(message, flush=True)


def _lifecycle(task: str, cluster: Flags, plant: list[str] | None = None, lane: str = "") -> Lifecycle:
    """The lifecycle of a task; task "" for `e2e`, which begins its run itself."""
    try:
        cfg = _cfg(cluster, plant)
    except UserError as err:  # a refused flag or cluster.yaml still leaves a report to look at
        write_refusal(reports_folder(cluster.get("reports_dir")), str(err), _say, task=task or "e2e")
        raise
    lc = Lifecycle(cfg, say=_say, lane=lane)
    if task:  # the task joins the run open in the run folder, or starts one (run_record.py)
        lc.begin(task)
    return lc


@cli_task("provider", help={
    "provider": "docker (the lab) | libvirt (the VM lane) | virtualbox: install only what this provider uses "
                "(default: provider of cluster.yaml / CALICOLAB_PROVIDER)",
    "for": "tests: also what `invoke test` runs (the lab, the libvirt VM lane, the test tools)",
    "dry_run": "print the plan (groups, what is present and missing) and install nothing"})
def setup(c, for_="", dry_run=False, *, cluster: Flags):
    """Install the system packages (apt) the provider needs and start the Docker engine if needed."""
    chosen = cluster.get("provider") or config.load().provider  # the provider the other tasks would use
    do_setup(chosen, [p.strip() for p in for_.split(",") if p.strip()], _say, dry_run=dry_run)


@cli_task(*CLUSTER)
def box(c, *, cluster: Flags):
    """Build the node image (lab) or the VM box (CentOS 7, or Debian 12 for libvirt) unless its inputs are unchanged."""
    lc = _lifecycle("box", cluster)
    try:
        lc.box()
    finally:
        lc.finish()


@cli_task(*CLUSTER)
def up(c, *, cluster: Flags):
    """Bring node1 and node2 up (builds the image first when needed)."""
    lc = _lifecycle("up", cluster)
    try:
        lc.up()
    finally:
        lc.finish()


@cli_task(*CLUSTER)
def provision(c, *, cluster: Flags):
    """Apply the guide's sections 3-6 to both nodes; a second run reports no changes."""
    lc = _lifecycle("provision", cluster)
    try:
        lc.provision()
    finally:
        lc.finish()


SUITE_HELP = ("checks (default: read-only checks, then fault injection) | read-only | "
              "upgrade (read-only, upgrade rehearsals, read-only again)")


@cli_task(*CLUSTER, "budgets", help={"pytest_args": "extra pytest arguments, e.g. '-k etcd -x'", "suite": SUITE_HELP,
                                     "plant": PLANT_HELP}, iterable=["plant"])
def verify(c, pytest_args="", suite="checks", plant=None, *, cluster: Flags):
    """Run the e2e tests (e2e/) against the running cluster."""
    lc = _lifecycle("verify", cluster, plant)
    try:
        lc.verify(pytest_args.split(), suite)
    finally:
        lc.finish()


@cli_task("provider", "prefix", "run_dir", "reports_dir", "subnet", "vm_os")
def destroy(c, *, cluster: Flags):
    """Remove the nodes and their network, and leftovers of earlier runs (idempotent)."""
    lc = _lifecycle("destroy", cluster)
    try:
        lc.destroy(leftovers=True)
    finally:
        lc.finish()


@cli_task("provider", "prefix", "run_dir", help={"node": "node name, e.g. node1",
                                                 "command": "run this command instead of a shell"})
def ssh(c, node, command="", *, cluster: Flags):
    """Open a shell on a node (or run one command there) through Vagrant's SSH settings."""
    cfg = _cfg(cluster)
    cfg.node(node)
    target = state.read(cfg).get("ssh", {}).get(node)
    if not target:
        raise UserError("the cluster is not up: run `invoke up`")
    args = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-i", target["key_file"], "-p", str(target["port"]),
            f"{target['user']}@{target['host']}"]
    if command:
        args.append(command)
    sys.exit(subprocess.call(args))


@cli_task(*CLUSTER, "history_file", "budgets", help={
    "destroy": "always (default) | passing (keep a failed cluster) | never",
    "pytest_args": "extra pytest arguments for the verify stage", "suite": SUITE_HELP,
    "idempotence": "--no-idempotence skips the second provision that must change nothing "
                   "(the report shows the stage as skipped)",
    "lane": "the run's name on its run page and in the history (default: the prefix; `invoke matrix` "
            "names its lanes)",
    "plant": PLANT_HELP}, iterable=["plant"])
def e2e(c, destroy="always", pytest_args="", suite="checks", idempotence=True, lane="", plant=None, *,
        cluster: Flags):
    """Replay the whole guide: box, up, provision, idempotence, verify, destroy."""
    lc = _lifecycle("", cluster, plant, lane)
    lc.e2e(destroy, pytest_args.split(), suite, idempotence)


# ---- upgrade: rolling (the default of `invoke upgrade`), drill, restore ----------------------------
UPGRADE_HELP = {"etcd": "target etcd version (passes every minor on the way)",
                "docker": "target Docker version", "calico": "target calico/node version (rolling restart)",
                "plant": PLANT_HELP}
OLD_UPGRADE_MODES = {
    "dwell": "deprecated spelling of `invoke upgrade.drill --etcd X`",
    "rollback": "deprecated spelling of `invoke upgrade.drill --etcd X --rollback`",
    "restore": "deprecated spelling of `invoke upgrade.restore`"}


@cli_task(*RUN_FOLDER, "budgets", help={**UPGRADE_HELP, **OLD_UPGRADE_MODES}, iterable=["plant"])
def upgrade_rolling(c, etcd=None, docker=None, calico=None, dwell=False, rollback=False,
                    restore=False, plant=None, *, cluster: Flags):
    """Rehearse upgrades on the running cluster: rolling, gated, workloads, etcd keys and budgets checked."""
    if restore:
        if etcd or docker or calico or cluster.get("budgets") or dwell or rollback or plant:
            raise UserError("--restore drills the running cluster alone: drop the other flags")
        renamed("upgrade --restore", "upgrade.restore")
        return _restore(cluster)
    if dwell or rollback:
        if docker or calico or cluster.get("budgets"):
            raise UserError("--dwell and --rollback drill etcd alone: drop --docker, --calico and --budgets")
        renamed("upgrade --dwell" + (" --rollback" if rollback else ""),
                "upgrade.drill" + (" --rollback" if rollback else ""))
        return _drill(etcd, rollback, cluster, plant)
    lc = _lifecycle("upgrade", cluster, plant)
    try:  # the rehearsal is a stage of the run the cluster belongs to (its page shows it)
        with lc.stage("upgrade"):
            run_upgrades(lc.cfg, {"etcd": etcd, "docker": docker, "calico": calico}, say=_say,
                         budgets_file=str(lc.cfg.budgets_path))
    finally:
        lc.finish()


@cli_task(*RUN_FOLDER, help={
    "etcd": "move the first member one minor towards this etcd version and stay there (mixed versions): "
            "checks, each member killed in turn, the client history",
    "rollback": "then roll that member back (before the cluster version moves)",
    "plant": PLANT_HELP}, iterable=["plant"])
def upgrade_drill(c, etcd=None, rollback=False, plant=None, *, cluster: Flags):
    """The half-upgraded etcd cluster: one member a minor ahead (and back with --rollback)."""
    _drill(etcd, rollback, cluster, plant)


def _drill(etcd: str | None, rollback: bool, cluster: Flags, plant: list[str] | None = None) -> None:
    lc = _lifecycle("upgrade", cluster, plant)
    try:
        with lc.stage("rollback drill" if rollback else "dwell drill"):
            run_drill(lc.cfg, etcd, rollback, say=_say)
    finally:
        lc.finish()


@cli_task(*RUN_FOLDER)
def upgrade_restore(c, *, cluster: Flags):
    """The disaster drill: back up etcd, remove its data everywhere, restore, check Calico and Docker.

    The backup holds the v2 keys and, from etcd 3.4, a v3 snapshot."""
    _restore(cluster)


def _restore(cluster: Flags) -> None:
    lc = _lifecycle("upgrade", cluster)
    try:
        with lc.stage("restore drill"):
            run_restore(lc.cfg, say=_say)
    finally:
        lc.finish()


@cli_task("prefix", "run_dir", "reports_dir", help={
    "lanes": "a lane set from matrix.yaml (ci, versions, upgrades) or inline lanes: "
             "'etcd=3.3.25,docker=20.10.5,suite=upgrade;etcd=3.5.16'",
    "parallel": "how many lanes at a time (default: all)",
    "destroy": "always (default) | passing | never, for every lane"})
def matrix(c, lanes="ci", parallel="0", destroy="always", *, cluster: Flags):
    """Run version lanes side by side (own prefix, subnet and reports each) and tabulate them."""
    run_matrix(config.load(cluster), lanes, destroy, say=_say, parallel=whole_number("--parallel", parallel))


# ---- bench: lifecycle (the default of `invoke bench`), lanes, checker, against-lab -----------------
OLD_BENCH_MODES = {
    "lanes": "deprecated spelling of `invoke bench.lanes --count N`",
    "checker": "deprecated spelling of `invoke bench.checker --operations N`",
    "against_lab": "deprecated spelling of `invoke bench.against-lab`"}


@cli_task(*CLUSTER, help={"runs": "how many lifecycles to time (default 1)", "suite": SUITE_HELP,
                          **OLD_BENCH_MODES})
def bench_lifecycle(c, runs="1", suite="checks", lanes="0", checker="0", against_lab=False, *, cluster: Flags):
    """Time the lab lifecycle stage by stage; print a table, write JSON."""
    suite_passes(suite)  # an unknown suite is refused before anything is built
    if against_lab:
        renamed("bench --against-lab", "bench.against-lab")
        return run_against_lab(_cfg(cluster), say=_say, suite=suite)
    if whole_number("--checker", checker):
        renamed("bench --checker N", "bench.checker --operations N")
        return _checker(whole_number("--checker", checker), cluster)
    if whole_number("--lanes", lanes):
        renamed("bench --lanes N", "bench.lanes --count N")
        return run_lane_bench(_cfg(cluster), whole_number("--lanes", lanes), say=_say)
    run_bench(_cfg(cluster), whole_number("--runs", runs, minimum=1), say=_say, suite=suite)


@cli_task(*CLUSTER, help={"count": "how many lanes side by side, after 1 lane alone (read-only suite; default 2)"})
def bench_lanes(c, count="2", *, cluster: Flags):
    """Time 1 lane alone, then this many lanes side by side (read-only suite)."""
    run_lane_bench(_cfg(cluster), whole_number("--count", count, minimum=2), say=_say)


@cli_task(*CLUSTER, help={"operations": "operations in the synthetic history, over 10 keys (default 5000)"})
def bench_checker(c, operations="5000", *, cluster: Flags):
    """Time the linearizability checker on a synthetic history; no cluster."""
    _checker(whole_number("--operations", operations, minimum=1), cluster)


def _checker(operations: int, cluster: Flags) -> None:
    run_checker_bench(_cfg(cluster), operations, keys=10, clients=4, say=_say)


@cli_task(*CLUSTER, help={"suite": SUITE_HELP})
def bench_against_lab(c, suite="checks", *, cluster: Flags):
    """With a VM provider: the VM lane, then the lab, in one run; per stage both timings and the ratio."""
    suite_passes(suite)
    run_against_lab(_cfg(cluster), say=_say, suite=suite)


VM_LANE_DEADLINE_S = 3600  # the VM lane alone: 13 to 19 min on an idle machine (docs/vms.md, timings)
LAB_RUNS_DEADLINE_S = 2400  # the e2e (about 2 min alone) then a read-only lifecycle (about 50 s)
# tests/lab's second lane: the lab tests run two at a time (one per xdist worker) instead of
# queueing on one lane. Outside the matrix lanes' 192.168.224.0/20, which run after them.
SECOND_LAB_SUBNET = "192.168.222.0/24"


@cli_task(help={"lab": "also run the lab end-to-end (default true)",
                "vm": "the VM lane (the read-only suite on two Debian 12 VMs under libvirt, KVM or TCG) beside "
                      "the lab steps at a lower CPU priority (default true; --no-vm leaves it out); skipped with "
                      "the reason where libvirt's tools are missing (docs/vm-runners.md)"})
def test(c, lab=True, vm=True):
    """The project's own checks: ruff, unit tests, the lab e2e run, the CI lanes, a soak, the VM lane.

    After the unit and lab tests, the CI lanes side by side (etcd 3.3 -> 3.5 upgrade rehearsals,
    etcd 3.5 over TLS) and beside them the lab end-to-end run (read-only checks and fault
    injection) followed by a one-run soak; beside all of it the VM lane (matrix.yaml's `vm`)."""
    lacking = setup_plan("docker", ["tests"]).missing  # the lab, the VM lane and the test tools
    if lacking:
        print(f"missing {' '.join(lacking)}: run `invoke setup --for tests` as root (./bootstrap.sh invoke test "
              "does); what needs them fails or is skipped", flush=True)
    env = dict(os.environ)
    if lab:  # tests/lab bring clusters up in lanes of their own (before the e2e run, so free)
        cfg = config.load()
        env.setdefault("CALICOLAB_LAB_PREFIX", f"{cfg.prefix}-lab")
        env.setdefault("CALICOLAB_LAB_SUBNET", f"{cfg.subnet},{SECOND_LAB_SUBNET}")
    c.run("ruff check .", pty=False)
    vm_lane = _start_vm_lane(env) if lab and vm else None
    beside = [(vm_lane, VM_LANE_DEADLINE_S)] if vm_lane else []
    try:
        c.run(f"{sys.executable} -m pytest tests -n auto --dist worksteal -q -p no:cacheprovider "
              "--junitxml=reports/unit.xml", pty=False, env=env)
        if lab:
            beside.insert(0, (_start_lab_runs(env), LAB_RUNS_DEADLINE_S))
            c.run(f"{sys.executable} -m invoke matrix --lanes ci", pty=False, env=env)
    except BaseException:
        for job, _ in beside:
            print(f"stopping the {job.name} (log: {job.log}) ...", flush=True)
            job.stop()
        raise
    for job, deadline in beside:
        _finish(job, deadline)


def _finish(job: Beside, deadline: float) -> None:
    """Wait for a job run beside the lab steps, show its last lines, fail the task if it failed."""
    print(f"lab steps done {job.elapsed:.0f} s after the {job.name} started; "
          + ("waiting for it ..." if job.running else f"it had ended at {job.seconds:.0f} s"), flush=True)
    code = job.wait(timeout=max(60.0, deadline - job.seconds))
    print(job.tail(job.summary_lines), flush=True)
    if code != 0:
        why = f"exit {code}" if code is not None else f"still running after {deadline:.0f} s, stopped"
        raise StageFailed(f"the {job.name}: {why}; log: {job.log}")
    print(f"{job.name}: passed in {job.seconds:.0f} s, beside the lab steps", flush=True)


def _start_lab_runs(env: dict[str, str]) -> Beside:
    """The lab e2e run, then the soak (kept short here: `invoke soak`, 10 runs, is the real
    measure), in one process beside the CI lanes, at the lab's priority. Both use the default
    prefix and subnet (the lanes, 192.168.224.0/20, do not), so one after the other. Beside the
    lanes, not before them: the lanes' last minutes are the upgrade rehearsal alone, its waits
    leaving a core idle (the soak beside them had ended at 268 s of the lanes' 518 s), and the
    e2e run ahead of them had kept the lanes waiting about 2 min.

    One soak run: the e2e before it is the same read-only lifecycle (same prefix, subnet and
    settings) with the fault pass after it, so the soak's run is already the second lifecycle in
    a row on one prefix; a second soak run was a third copy of it (about 70 s of the job and 60
    CPU-s on this 2-CPU machine, where CI is CPU-bound from start to end)."""
    job = Beside("lab e2e and soak", [sys.executable, "-m", "invoke", "e2e",
                                      "soak", "--runs", "1", "--suite", "read-only",
                                      "--run-dir", str(paths.ROOT / ".run" / "soak"),
                                      "--reports-dir", str(paths.ROOT / "reports" / "soak")],
                 paths.ROOT / "reports" / "lab-runs.log", niceness=0, summary_lines=45).start(env)
    print(f"lab e2e, then a 1-run soak: started beside the CI lanes (log: {job.log})", flush=True)
    return job


def _start_vm_lane(env: dict[str, str]) -> Beside | None:
    missing = vm_lane_missing()
    if missing:
        print(f"VM lane skipped: {missing}", flush=True)
        return None
    lane = Beside("VM lane", [sys.executable, "-m", "invoke", "matrix", "--lanes", "vm"],
                  paths.ROOT / "reports" / "vm-lane.log").start(env)
    print(f"VM lane: started beside the lab steps at nice {NICENESS} (log: {lane.log})", flush=True)
    return lane


@cli_task("provider", "prefix", "run_dir", "reports_dir", "subnet", help={
    "json": "also write the findings as JSON to this path",
    "check": "run only these checks (comma-separated names, e.g. 'BGP mesh,etcd cluster')"})
def doctor(c, json="", check="", *, cluster: Flags):
    """Diagnose the running cluster: check, node, result, likely cause and fix (exit 1 on a failure)."""
    lc = _lifecycle("doctor", cluster)
    only = [name.strip() for name in check.split(",") if name.strip()] or None
    try:  # a stage of the cluster's run: its page shows the doctor's table and judges it
        with lc.stage("doctor"):
            report = run_doctor(lc.cfg, json or None, only, say=_say)
            pages.save_doctor(lc.cfg.reports_path, report.to_json())
            if report.failed:
                raise StageFailed(f"{len(report.failed)} check(s) failed: " +
                                  ", ".join(sorted({f"{f.check} ({f.node})" for f in report.failed})))
    finally:
        lc.finish()


# ---- mirror: start (the default of `invoke mirror`), stop, status ----------------------------------
@cli_task("prefix", "run_dir", help={"stop": "deprecated spelling of `invoke mirror.stop`",
                                     "status": "deprecated spelling of `invoke mirror.status`"})
def mirror_start(c, stop=False, status=False, *, cluster: Flags):
    """Start a local registry, file server and proxy: Docker Hub, GitHub and a site's proxy, offline."""
    if stop:
        renamed("mirror --stop", "mirror.stop")
        return _mirror_stop(cluster)
    if status:
        renamed("mirror --status", "mirror.status")
        return _mirror_status(cluster)
    served = local_mirror.start(config.load(cluster), say=_say)
    print("point a run at it with:")
    for key, value in served.settings().items():
        print(f"  export {key}={value}")
    print("and to send the nodes through its proxy as well:")
    for key, value in served.proxy_settings().items():
        print(f"  proxy {key}={value}")


@cli_task("prefix", "run_dir")
def mirror_stop(c, *, cluster: Flags):
    """Stop the local mirror (also done by `invoke destroy` of the run folder)."""
    _mirror_stop(cluster)


def _mirror_stop(cluster: Flags) -> None:
    cfg = config.load(cluster)
    if not local_mirror.stop(cfg):
        print(f"no mirror in {cfg.run_path}")


@cli_task("prefix", "run_dir")
def mirror_status(c, *, cluster: Flags):
    """Say whether the local mirror runs, and where."""
    _mirror_status(cluster)


def _mirror_status(cluster: Flags) -> None:
    cfg = config.load(cluster)
    up = local_mirror.running(cfg)
    print(f"registry {up.registry}, files http://{up.host_ip}:{up.files_port}, proxy "
          f"http://{up.host_ip}:{up.proxy_port}" if up else f"no mirror in {cfg.run_path}")


@cli_task("provider", "etcd", "calico", "vm_os", "lock_file", help={
    "record": "fetch calicoctl, resolve the calico/node and busybox digests (and an unpinned etcd archive) "
              "from the configured registry and download base, and write the lock: run it once on a "
              "trusted machine, review and commit artifacts.lock",
    "forget": "remove this entry (e.g. 'calicoctl v1.6.1') so its next download is locked again"})
def lock(c, record=False, forget="", *, cluster: Flags):
    """Show the lock of upstream downloads (sha256 and image digests); --record writes it."""
    cfg = config.load(cluster)
    if record:
        resolved, changed = upstream.record_lock(cfg, cfg.lock_path, say=_say)
        print(render(("artifact", "value", "source"), [
            (r.artifact.key, r.value, r.via if r.recorded else f"{r.via} (not recorded)") for r in resolved]))
        for key, old in changed.items():
            print(f"!!! {key} changed: it was {old} in the lock before")
        print(f"wrote {cfg.lock_path}: review it (the values above are what every later run verifies against) "
              "and commit it; strict runs (CALICOLAB_STRICT_ARTIFACTS=true) download nothing else")
        return
    held = downloads.Lock.load(cfg.lock_path)
    if forget:
        if not held.forget(forget):
            raise UserError(f"{forget!r} is not in {cfg.lock_path}: known are {', '.join(held.entries) or 'none'}")
        print(f"forgot {forget}: record it again with `invoke lock --record` (or on first use without strict mode)")
        return
    if not held.entries:
        print(f"{cfg.lock_path}: nothing locked yet: run `invoke lock --record` on a trusted machine and commit it")
        return
    print(render(("artifact", "kind", "hash", "recorded", "source"), [
        (key, e["kind"], e.get("sha256") or e.get("digest", ""), e.get("recorded", ""), e.get("source", ""))
        for key, e in held.entries.items()]))


@cli_task(*CLUSTER, help={"runs": "how many e2e lifecycles to run in a row (default 10)", "suite": SUITE_HELP})
def soak(c, runs="10", suite="checks", *, cluster: Flags):
    """Run the e2e lifecycle N times in a row; print passes, failures and timing spread, write soak.json."""
    result = run_soak(_cfg(cluster), parse_runs(runs), say=_say, suite=suite)
    if result["failed"]:
        raise StageFailed(f"{result['failed']} of {result['runs_done']} soak runs failed (see the table above)")


# ---- report: page (the default of `invoke report`), history ----------------------------------------
REPORT_HELP = {"reports_dir": "the run's reports folder (default: reports_dir of cluster.yaml)",
               "history_file": "the history file (default: history_file of cluster.yaml, "
                               "else history.jsonl in the reports folder)"}
LAST_HELP = f"how many runs per lane the history looks at (default {DEFAULT_LAST})"


@cli_task("reports_dir", "history_file", help={
    **REPORT_HELP, "history": "deprecated spelling of `invoke report.history`",
    "last": f"with --history (deprecated): {LAST_HELP}"})
def report_page(c, history=False, last=str(DEFAULT_LAST), *, cluster: Flags):
    """Write the run page (index.html) again from the reports folder's JSON."""
    if history:
        renamed("report --history", "report.history")
    _report(history, last, cluster)


@cli_task("reports_dir", "history_file", help={**REPORT_HELP, "last": LAST_HELP})
def report_history(c, last=str(DEFAULT_LAST), *, cluster: Flags):
    """Per lane pass rate, stage durations and outages with P50/P95 over the last runs.

    Prints a table and writes history.html; runs outside them are flagged."""
    _report(True, last, cluster)


def _report(history: bool, last: str, cluster: Flags) -> None:
    cfg = config.load(cluster)
    pages.report(cfg.reports_path, cfg.history_path, history, whole_number("--last", last, minimum=1), say=_say)


@cli_task(*CLUSTER, "history_file", "lock_file", help={
    "write_doc": "instead: write docs/settings.md again from the table of settings (config.SETTINGS)"})
def config_(c, write_doc=False, *, cluster: Flags):
    """Print every setting with its effective value and source (default, cluster.yaml, variable, flag).

    Flags given here are applied as any task would apply them; --write-doc writes docs/settings.md."""
    if write_doc:
        _say(f"wrote {write_settings_doc(settings_flags())}")
        return
    cfg, rows = config.explain(cluster)
    _say(render(("setting", "value", "source", "variable"), [
        (e.setting.yaml_key or f"({e.setting.key})", _shown(e.value), e.source, e.setting.env)
        for e in rows]))
    if (cfg.run_path / "cluster.json").exists() and state.read(cfg).get("ssh"):
        _say(f"a cluster is up in {cfg.run_path}: its tasks use {cfg.run_path / 'cluster.json'} "
             "(what it was brought up with)")


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return '""' if value == "" else str(value)


def _namespace(name: str, default: Any, *others: tuple[str, Any]) -> Collection:
    ns = Collection(name)
    ns.add_task(default[1], name=default[0], default=True)
    for task_name, body in others:
        ns.add_task(body, name=task_name)
    return ns


ns = Collection(setup, box, up, provision, verify, destroy, ssh, e2e, matrix, test, doctor, lock, soak)
ns.add_task(config_, name="config")
ns.add_collection(_namespace("upgrade", ("rolling", upgrade_rolling), ("drill", upgrade_drill),
                             ("restore", upgrade_restore)))
ns.add_collection(_namespace("bench", ("lifecycle", bench_lifecycle), ("lanes", bench_lanes),
                             ("checker", bench_checker), ("against-lab", bench_against_lab)))
ns.add_collection(_namespace("mirror", ("start", mirror_start), ("stop", mirror_stop), ("status", mirror_status)))
ns.add_collection(_namespace("report", ("page", report_page), ("history", report_history)))


def settings_flags(collection: Collection = ns) -> dict[str, list[str]]:
    """Setting -> the tasks that take it as a flag (docs/settings.md's flag column)."""
    found: dict[str, list[str]] = {}
    for name in sorted(collection.task_names):
        for param in collection[name].argspec(collection[name].body).parameters:
            if param in config.SETTINGS and name != "config":
                found.setdefault(param, []).append(name)
    for group, members in collection.collections.items():  # bench.* when every bench task takes it
        names = {f"{group}.{member}" for member in members.task_names}
        for key, tasks in found.items():
            if names <= set(tasks):
                found[key] = sorted([t for t in tasks if t not in names] + [f"{group}.*"])
    return found

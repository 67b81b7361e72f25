"""Invoke tasks: the lifecycle of the guide's two-node cluster and the project's own checks.

    invoke e2e                  box -> up -> provision -> idempotence -> verify -> destroy
    invoke up / provision / verify / destroy / ssh node1
    invoke test                 lint + unit tests + the lab end-to-end run
    invoke report [--history]   the run page (reports/index.html) again, or the runs' history
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading

from invoke import Exit, task

from calicolab.core import config, paths, state
from calicolab.core.cli_args import whole_number
from calicolab.core.errors import StageFailed, Terminated, UserError
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

CLUSTER_HELP = {
    "provider": "docker (local lab, default) | virtualbox | libvirt",
    "etcd": "etcd version (see versions.yaml)",
    "docker": "Docker version (see versions.yaml)",
    "calico": "calico/node version",
    "calico_source": "upstream | double | auto: real Calico images or the project's double",
    "privileged": "true | false | auto: --privileged for node and calico-node containers",
    "run_dir": "run folder for state and Vagrant files (default .run)",
    "reports_dir": "folder for JUnit files, timings and the run page index.html (default reports)",
    "prefix": "name prefix for containers, networks and images",
    "subnet": "private network of the nodes (default 192.168.223.0/24)",
    "etcd_tls": "true | false (default; the flag alone means true): etcd clients over TLS with client certificates",
    "os": "VM box flavour: centos7 (default; the guide's hosts) | debian12 (libvirt; runs under KVM or TCG)",
}
TLS_FLAG = ["etcd_tls"]  # --etcd-tls alone means true


def _cfg(**flags: str | None) -> config.ClusterConfig:
    flags = {("vm_os" if k == "os" else k): v for k, v in flags.items()}  # --os is the box flavour
    asked = {k: v for k, v in flags.items() if k in config.OVERRIDABLE}
    return running_config(config.load(asked), asked)


def friendly(fn):
    """Turn expected failures into one line and a non-zero exit, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _raise_terminated)  # a cancelled CI job cleans up too
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            raise Exit(f"error: {err}", code=2) from None
        except StageFailed as err:
            raise Exit(f"failed: {err}", code=1) from None
        except Terminated:
            raise Exit("terminated", code=143) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper


def _raise_terminated(_signum, _frame):
    raise Terminated


def _say(message: str) -> None:
    print(message, flush=True)


def _lifecycle(task: str, **flags):
    """The lifecycle of a task; task "" for `e2e`, which begins its run itself."""
    say = _say
    try:
        cfg = _cfg(**flags)
    except UserError as err:  # a refused flag or cluster.yaml still leaves a report to look at
        write_refusal(reports_folder(flags.get("reports_dir")), str(err), say, task=task or "e2e")
        raise
    lc = Lifecycle(cfg, say=say)
    if task:  # the task joins the run open in the run folder, or starts one (run_record.py)
        lc.begin(task)
    return lc


@task(help={"provider": "docker (the lab) | libvirt (the VM lane) | virtualbox: install only what this provider "
                        "uses (default: provider of cluster.yaml / CALICOLAB_PROVIDER)",
            "for": "tests: also what `invoke test` runs (the lab, the libvirt VM lane, the test tools)",
            "dry_run": "print the plan (groups, what is present and missing) and install nothing"})
@friendly
def setup(c, provider=None, for_="", dry_run=False):
    """Install the system packages (apt) the provider needs and start the Docker engine if needed."""
    chosen = provider or config.load().provider  # the provider the other tasks would use
    do_setup(chosen, [p.strip() for p in for_.split(",") if p.strip()], lambda m: print(m, flush=True),
             dry_run=dry_run)


@task(help=CLUSTER_HELP, optional=TLS_FLAG)
@friendly
def box(c, provider=None, prefix=None, etcd=None, docker=None, calico=None, calico_source=None,
        privileged=None, run_dir=None, reports_dir=None, subnet=None, etcd_tls=None, os=None):
    """Build the node image (lab) or the VM box (CentOS 7, or Debian 12 for libvirt) unless its inputs are unchanged."""
    lc = _lifecycle("box", **locals())
    try:
        lc.box()
    finally:
        lc.finish()


@task(help=CLUSTER_HELP, optional=TLS_FLAG)
@friendly
def up(c, provider=None, prefix=None, etcd=None, docker=None, calico=None, calico_source=None,
       privileged=None, run_dir=None, reports_dir=None, subnet=None, etcd_tls=None, os=None):
    """Bring node1 and node2 up (builds the image first when needed)."""
    lc = _lifecycle("up", **locals())
    try:
        lc.up()
    finally:
        lc.finish()


@task(help=CLUSTER_HELP, optional=TLS_FLAG)
@friendly
def provision(c, provider=None, prefix=None, etcd=None, docker=None, calico=None, calico_source=None,
              privileged=None, run_dir=None, reports_dir=None, subnet=None, etcd_tls=None, os=None):
    """Apply the guide's sections 3-6 to both nodes; a second run reports no changes."""
    lc = _lifecycle("provision", **locals())
    try:
        lc.provision()
    finally:
        lc.finish()


SUITE_HELP = ("checks (default: read-only checks, then fault injection) | read-only | "
              "upgrade (read-only, upgrade rehearsals, read-only again)")


@task(help={**CLUSTER_HELP, "pytest_args": "extra pytest arguments, e.g. '-k etcd -x'", "suite": SUITE_HELP},
      optional=TLS_FLAG)
@friendly
def verify(c, pytest_args="", suite="checks", provider=None, prefix=None, etcd=None, docker=None, calico=None,
           calico_source=None, privileged=None, run_dir=None, reports_dir=None, subnet=None, etcd_tls=None, os=None):
    """Run the e2e tests (e2e/) against the running cluster."""
    flags = {k: v for k, v in locals().items() if k not in ("c", "pytest_args", "suite")}
    lc = _lifecycle("verify", **flags)
    try:
        lc.verify(pytest_args.split(), suite)
    finally:
        lc.finish()


@task(help={k: CLUSTER_HELP[k] for k in ("provider", "prefix", "run_dir", "reports_dir", "subnet", "os")})
@friendly
def destroy(c, provider=None, prefix=None, run_dir=None, reports_dir=None, subnet=None, os=None):
    """Remove the nodes and their network, and leftovers of earlier runs (idempotent)."""
    lc = _lifecycle("destroy", **locals())
    try:
        lc.destroy(leftovers=True)
    finally:
        lc.finish()


@task(help={"node": "node name, e.g. node1", "command": "run this command instead of a shell",
            **{k: CLUSTER_HELP[k] for k in ("provider", "prefix", "run_dir")}})
@friendly
def ssh(c, node, command="", provider=None, prefix=None, run_dir=None):
    """Open a shell on a node (or run one command there) through Vagrant's SSH settings."""
    cfg = _cfg(provider=provider, prefix=prefix, run_dir=run_dir)
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


@task(help={**CLUSTER_HELP,
            "destroy": "always (default) | passing (keep a failed cluster) | never",
            "pytest_args": "extra pytest arguments for the verify stage", "suite": SUITE_HELP,
            "idempotence": "--no-idempotence skips the second provision that must change nothing "
                           "(the report shows the stage as skipped)"},
      optional=TLS_FLAG)
@friendly
def e2e(c, destroy="always", pytest_args="", suite="checks", idempotence=True, provider=None, prefix=None, etcd=None,
        docker=None, calico=None, calico_source=None, privileged=None, run_dir=None, reports_dir=None,
        subnet=None, etcd_tls=None, os=None):
    """Replay the whole guide: box, up, provision, idempotence, verify, destroy."""
    flags = {k: v for k, v in locals().items() if k not in ("c", "destroy", "pytest_args", "suite", "idempotence")}
    lc = _lifecycle("", **flags)
    lc.e2e(destroy, pytest_args.split(), suite, idempotence)


@task(help={"etcd": "target etcd version (passes every minor on the way)",
            "docker": "target Docker version", "calico": "target calico/node version (rolling restart)",
            "budgets": "disruption budgets per step (YAML; default budgets.yaml)",
            "dwell": "etcd only: move the first member one minor towards --etcd and stay there (mixed "
                     "versions): checks, each member killed in turn, the client history",
            "rollback": "with --dwell: then roll that member back (before the cluster version moves)",
            "restore": "the disaster drill instead: back up (v2 keys, a v3 snapshot from 3.4), stop etcd "
                       "everywhere and remove its data, restore, check Calico and Docker",
            **{k: CLUSTER_HELP[k] for k in ("provider", "prefix", "run_dir", "reports_dir")}})
@friendly
def upgrade(c, etcd=None, docker=None, calico=None, budgets=None, dwell=False, rollback=False, restore=False,
            provider=None, prefix=None, run_dir=None, reports_dir=None):
    """Rehearse upgrades on the running cluster: rolling, gated, workloads, etcd keys and budgets checked."""
    lc = _lifecycle("upgrade", provider=provider, prefix=prefix, run_dir=run_dir, reports_dir=reports_dir)
    cfg = lc.cfg
    say = lambda m: print(m, flush=True)  # noqa: E731
    try:  # the rehearsal is a stage of the run the cluster belongs to (its page shows it)
        if restore:
            if etcd or docker or calico or budgets or dwell or rollback:
                raise UserError("--restore drills the running cluster alone: drop the other flags")
            with lc.stage("restore drill"):
                run_restore(cfg, say=say)
            return
        if dwell or rollback:
            if docker or calico or budgets:
                raise UserError("--dwell and --rollback drill etcd alone: drop --docker, --calico and --budgets")
            with lc.stage("rollback drill" if rollback else "dwell drill"):
                run_drill(cfg, etcd, rollback, say=say)
            return
        with lc.stage("upgrade"):
            run_upgrades(cfg, {"etcd": etcd, "docker": docker, "calico": calico}, say=say, budgets_file=budgets)
    finally:
        lc.finish()


@task(help={"lanes": "a lane set from matrix.yaml (ci, versions, upgrades) or inline lanes: "
                     "'etcd=3.3.25,docker=20.10.5,suite=upgrade;etcd=3.5.16'",
            "parallel": "how many lanes at a time (default: all)",
            "destroy": "always (default) | passing | never, for every lane",
            **{k: CLUSTER_HELP[k] for k in ("prefix", "run_dir", "reports_dir")}})
@friendly
def matrix(c, lanes="ci", parallel="0", destroy="always", prefix=None, run_dir=None, reports_dir=None):
    """Run version lanes side by side (own prefix, subnet and reports each) and tabulate them."""
    base = config.load({"prefix": prefix, "run_dir": run_dir, "reports_dir": reports_dir})
    run_matrix(base, lanes, destroy, say=lambda m: print(m, flush=True),
               parallel=whole_number("--parallel", parallel))


@task(help={"runs": "how many lifecycles to time (default 1)",
            "lanes": "instead: time 1 lane alone, then this many lanes side by side (read-only suite)",
            "checker": "instead: time the linearizability checker on a synthetic history of this many "
                       "operations over 10 keys (e.g. 5000); no cluster",
            "against_lab": "with a VM provider: the VM lane, then the lab, in one run; per stage both timings "
                           "and the ratio",
            "suite": SUITE_HELP, **CLUSTER_HELP}, optional=TLS_FLAG)
@friendly
def bench(c, runs="1", lanes="0", checker="0", suite="checks", against_lab=False, provider=None, prefix=None,
          etcd=None, docker=None, calico=None, calico_source=None, privileged=None, run_dir=None, reports_dir=None,
          subnet=None, etcd_tls=None,
          os=None):
    """Time the lab lifecycle stage by stage (or lanes side by side); print a table, write JSON."""
    flags = {k: v for k, v in locals().items() if k not in ("c", "runs", "lanes", "checker", "suite", "against_lab")}
    suite_passes(suite)  # an unknown suite is refused before anything is built
    if against_lab:
        run_against_lab(_cfg(**flags), say=lambda m: print(m, flush=True), suite=suite)
        return
    if whole_number("--checker", checker):
        run_checker_bench(_cfg(**flags), whole_number("--checker", checker), keys=10, clients=4,
                          say=lambda m: print(m, flush=True))
        return
    if whole_number("--lanes", lanes):
        run_lane_bench(_cfg(**flags), whole_number("--lanes", lanes), say=lambda m: print(m, flush=True))
        return
    run_bench(_cfg(**flags), whole_number("--runs", runs, minimum=1), say=lambda m: print(m, flush=True),
              suite=suite)


VM_LANE_DEADLINE_S = 3600  # the VM lane alone, cold box, idle machine: 19 min (docs/vm-runners.md)


@task(help={"lab": "also run the lab end-to-end (default true)",
            "vm": "the VM lane (the read-only suite on two Debian 12 VMs under libvirt, KVM or TCG) beside "
                  "the lab steps at a lower CPU priority (default true; --no-vm leaves it out); skipped with "
                  "the reason where libvirt's tools are missing (docs/vm-runners.md)"})
@friendly
def test(c, lab=True, vm=True):
    """The project's own checks: ruff, unit tests, the lab end-to-end run (read-only checks and
    fault injection), the CI lanes side by side (etcd 3.3 -> 3.5 upgrade rehearsals, etcd 3.5
    over TLS), a two-run soak, and beside them the VM lane (matrix.yaml's `vm`)."""
    lacking = setup_plan("docker", ["tests"]).missing  # the lab, the VM lane and the test tools
    if lacking:
        print(f"missing {' '.join(lacking)}: run `invoke setup --for tests` as root (./bootstrap.sh invoke test "
              "does); what needs them fails or is skipped", flush=True)
    env = dict(os.environ)
    if lab:  # tests/lab bring clusters up in a lane of their own (before the e2e run, so free)
        cfg = config.load()
        env.setdefault("CALICOLAB_LAB_PREFIX", f"{cfg.prefix}-lab")
        env.setdefault("CALICOLAB_LAB_SUBNET", cfg.subnet)
    c.run("ruff check .", pty=False)
    vm_lane = _start_vm_lane(env) if lab and vm else None
    try:
        c.run(f"{sys.executable} -m pytest tests -n auto --dist worksteal -q -p no:cacheprovider "
              "--junitxml=reports/unit.xml", pty=False, env=env)
        if lab:
            c.run(f"{sys.executable} -m invoke e2e", pty=False, env=env)
            c.run(f"{sys.executable} -m invoke matrix --lanes ci", pty=False, env=env)
            # The soak task itself, kept short here; `invoke soak` (10 runs) is the real measure.
            c.run(f"{sys.executable} -m invoke soak --runs 2 --suite read-only", pty=False, env=env)
    except BaseException:
        if vm_lane:
            print(f"stopping the VM lane (log: {vm_lane.log}) ...", flush=True)
            vm_lane.stop()
        raise
    if vm_lane:
        print(f"lab steps done; waiting for the VM lane (running {vm_lane.seconds:.0f} s) ...", flush=True)
        code = vm_lane.wait(timeout=max(60.0, VM_LANE_DEADLINE_S - vm_lane.seconds))
        print(vm_lane.tail(), flush=True)
        if code != 0:
            why = f"exit {code}" if code is not None else f"still running after {VM_LANE_DEADLINE_S} s, stopped"
            raise StageFailed(f"the VM lane: {why}; log: {vm_lane.log}")
        print(f"VM lane: passed in {vm_lane.seconds:.0f} s, beside the lab steps", flush=True)


def _start_vm_lane(env: dict[str, str]) -> Beside | None:
    missing = vm_lane_missing()
    if missing:
        print(f"VM lane skipped: {missing}", flush=True)
        return None
    lane = Beside("VM lane", [sys.executable, "-m", "invoke", "matrix", "--lanes", "vm"],
                  paths.ROOT / "reports" / "vm-lane.log").start(env)
    print(f"VM lane: started beside the lab steps at nice {NICENESS} (log: {lane.log})", flush=True)
    return lane


@task(help={"json": "also write the findings as JSON to this path",
            "check": "run only these checks (comma-separated names, e.g. 'BGP mesh,etcd cluster')",
            **{k: CLUSTER_HELP[k] for k in ("provider", "prefix", "run_dir", "reports_dir", "subnet")}})
@friendly
def doctor(c, json="", check="", provider=None, prefix=None, run_dir=None, reports_dir=None, subnet=None):
    """Diagnose the running cluster: check, node, result, likely cause and fix (exit 1 on a failure)."""
    lc = _lifecycle("doctor", provider=provider, prefix=prefix, run_dir=run_dir, reports_dir=reports_dir,
                    subnet=subnet)
    only = [name.strip() for name in check.split(",") if name.strip()] or None
    try:  # a stage of the cluster's run: its page shows the doctor's table and judges it
        with lc.stage("doctor"):
            report = run_doctor(lc.cfg, json or None, only, say=lambda m: print(m, flush=True))
            pages.save_doctor(lc.cfg.reports_path, report.to_json())
            if report.failed:
                raise StageFailed(f"{len(report.failed)} check(s) failed: " +
                                  ", ".join(sorted({f"{f.check} ({f.node})" for f in report.failed})))
    finally:
        lc.finish()


@task(help={"stop": "stop it instead (also done by `invoke destroy` of the run folder)", "status": "say if it runs",
            **{k: CLUSTER_HELP[k] for k in ("prefix", "run_dir")}})
@friendly
def mirror(c, stop=False, status=False, prefix=None, run_dir=None):
    """Start a local registry, file server and proxy standing in for Docker Hub, GitHub and a site's
    proxy (the upstream path, offline)."""
    cfg = config.load({"prefix": prefix, "run_dir": run_dir})
    if stop:
        if not local_mirror.stop(cfg):
            print(f"no mirror in {cfg.run_path}")
        return
    if status:
        up = local_mirror.running(cfg)
        print(f"registry {up.registry}, files http://{up.host_ip}:{up.files_port}, proxy "
              f"http://{up.host_ip}:{up.proxy_port}" if up else f"no mirror in {cfg.run_path}")
        return
    served = local_mirror.start(cfg, say=lambda m: print(m, flush=True))
    print("point a run at it with:")
    for key, value in served.settings().items():
        print(f"  export {key}={value}")
    print("and to send the nodes through its proxy as well:")
    for key, value in served.proxy_settings().items():
        print(f"  proxy {key}={value}")


@task(help={"record": "fetch calicoctl, resolve the calico/node and busybox digests (and an unpinned etcd archive) "
                      "from the configured registry and download base, and write the lock: run it once on a "
                      "trusted machine, review and commit artifacts.lock",
            "forget": "remove this entry (e.g. 'calicoctl v1.6.1') so its next download is locked again",
            "lock_file": "the lock file (default: upstream.lock_file of cluster.yaml)",
            **{k: CLUSTER_HELP[k] for k in ("provider", "etcd", "calico", "os")}})
@friendly
def lock(c, record=False, forget="", lock_file=None, provider=None, etcd=None, calico=None, os=None):
    """Show the lock of upstream downloads (sha256 and image digests); --record writes it."""
    cfg = config.load({k: v for k, v in {"lock_file": lock_file, "provider": provider, "etcd": etcd,
                                         "calico": calico, "vm_os": os}.items() if v is not None})
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


@task(help={"runs": "how many e2e lifecycles to run in a row (default 10)", "suite": SUITE_HELP, **CLUSTER_HELP},
      optional=TLS_FLAG)
@friendly
def soak(c, runs="10", suite="checks", provider=None, prefix=None, etcd=None, docker=None, calico=None,
         calico_source=None, privileged=None, run_dir=None, reports_dir=None, subnet=None, etcd_tls=None, os=None):
    """Run the e2e lifecycle N times in a row; print passes, failures and timing spread, write soak.json."""
    flags = {k: v for k, v in locals().items() if k not in ("c", "runs", "suite")}
    result = run_soak(_cfg(**flags), parse_runs(runs), say=lambda m: print(m, flush=True), suite=suite)
    if result["failed"]:
        raise StageFailed(f"{result['failed']} of {result['runs_done']} soak runs failed (see the table above)")


@task(help={"history": "instead: per lane pass rate, stage durations and outages with P50/P95 over the last "
                       "runs (prints a table, writes history.html); runs outside them are flagged",
            "last": f"how many runs per lane the history looks at (default {DEFAULT_LAST})",
            "reports_dir": "the run's reports folder (default: reports_dir of cluster.yaml)",
            "history_file": "the history file (default: history_file of cluster.yaml, "
                            "else history.jsonl in the reports folder)"})
@friendly
def report(c, history=False, last=str(DEFAULT_LAST), reports_dir=None, history_file=None):
    """Write the run page (index.html) again from the reports folder's JSON, or the history."""
    cfg = config.load({"reports_dir": reports_dir, "history_file": history_file})
    pages.report(cfg.reports_path, cfg.history_path, history, whole_number("--last", last, minimum=1),
                 say=lambda m: print(m, flush=True))

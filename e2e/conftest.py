"""Fixtures for the e2e tests: the running cluster described by the run folder.

`invoke verify` names the run's effective configuration with `--cluster-json` (without it:
the run folder cluster.yaml names) and this task's test-only plants with `--plant KIND=VALUE`;
the deadline factor is cluster.json's. The tests reach the nodes over the SSH settings Vagrant
gave (state.json, beside cluster.json). Each folder under
e2e/ is one pass of `invoke verify` (calicolab/runs/passes.py); the folders whose tests
break or upgrade the cluster carry a marker, and a test whose marker does not match its
folder stops the run at collection.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from calicolab.core import config, deadlines
from calicolab.core import nodes as cluster_nodes
from calicolab.core.errors import UserError
from calicolab.core.state import calico_label
from calicolab.measure import command_log
from calicolab.report import artifacts
from calicolab.stack import snapshot
from e2e import expect, state_reads

HERE = Path(__file__).resolve().parent
# Folder -> the marker every test in it carries (and no test elsewhere carries).
FOLDER_MARKS = {"faults": "disruptive", "upgrade": "upgrade"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("calicolab", "the cluster under test")
    group.addoption("--cluster-json", default=None, metavar="PATH",
                    help="the run's effective configuration (invoke verify passes it; default: cluster.json "
                         "in the run folder that cluster.yaml names); state.json is read beside it")
    group.addoption("--command-log", default=None, metavar="DIR",
                    help="record every node command (node, test, start, seconds, exit) under DIR, one "
                         "JSON-lines file per worker: `invoke bench --suite read-only` measures its floor")
    group.addoption("--snapshot", default=None, metavar="PATH",
                    help="read once, check many: before the checks, read each node's declared state "
                         "(e2e/state_reads.py) in one round trip into PATH and answer the checks from it; "
                         "after them, read what they consumed again, live: a difference fails the pass")
    group.addoption("--plant", action="append", default=[], metavar="KIND=VALUE",
                    help="test only, repeatable: a fault or load planted on purpose "
                         f"({'; '.join(f'{k}={v}' for k, v in config.PLANTS.items())})")


def run_files(pytestconfig: pytest.Config) -> tuple[Path, Path]:
    """cluster.json and state.json of the cluster under test."""
    given = pytestconfig.getoption("cluster_json")
    cluster_json = Path(given) if given else config.load().run_path / "cluster.json"
    return cluster_json, cluster_json.with_name("state.json")


def _is_e2e_run(pytestconfig: pytest.Config) -> bool:
    """Started by `invoke verify` (or told the cluster outright), not a bare collection."""
    return bool(pytestconfig.getoption("cluster_json"))


def pytest_configure(config: pytest.Config) -> None:
    """This process's deadlines are the run's (cluster.json, written by the lifecycle), and a
    bad --plant is refused before any test runs."""
    plants(config)
    try:
        cluster_json, _ = run_files(config)
        factor = json.loads(cluster_json.read_text()).get(deadlines.EFFECTIVE_KEY, 1)
    except (UserError, OSError, ValueError, AttributeError):
        factor = 1  # no run yet: the cluster fixture says so when a test needs it
    deadlines.apply(factor)


def plants(pytestconfig: pytest.Config) -> config.Plants:
    try:
        return config.parse_plants(pytestconfig.getoption("plant"))
    except UserError as err:
        raise pytest.UsageError(str(err)) from None


@pytest.fixture(scope="session")
def cluster_json(pytestconfig) -> Path:
    return run_files(pytestconfig)[0]


@pytest.fixture(scope="session")
def cluster(cluster_json, pytestconfig) -> config.ClusterConfig:
    """The running cluster's configuration, with this run's plants (which cluster.json never holds:
    a test re-reading cluster.json keeps them with config.with_plants(..., cluster.plants))."""
    if not cluster_json.exists():
        pytest.fail(f"no running cluster ({cluster_json} missing): run `invoke up provision` first",
                    pytrace=False)
    return config.with_plants(config.from_effective(cluster_json), plants(pytestconfig))


@pytest.fixture(scope="session")
def run_state(pytestconfig) -> dict:
    _, state_json = run_files(pytestconfig)
    try:
        return json.loads(state_json.read_text())
    except FileNotFoundError:
        pytest.fail(f"no run state ({state_json}): run `invoke up provision` first", pytrace=False)


def guard_missing_commands(node) -> None:
    """Every check reads node commands through this: a command that is missing or cannot run
    (exit 127/126, sudo refused; CommandResult.cannot_run) fails the check there, naming the
    command and the PATH, so no check reads its silence as the component's answer (an empty
    `systemctl is-active` as "not running", say). Docker's own 126 is left to the check: `docker
    exec` answers it while a container is stopping, which the fault pass watches on purpose."""
    run = node.run

    def checked(cmd: str, **kwargs):
        __tracebackhide__ = True
        result = run(cmd, **kwargs)
        if result.cannot_run and not (result.program == "docker" and result.rc == 126):
            raise expect.CheckFailed(result.missing_text())
        return result

    node.run = checked


def _current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "")


def _recorded(pytestconfig: pytest.Config, made: dict, current_test=_current_test) -> dict:
    log = pytestconfig.getoption("command_log")
    if log:
        recorder = command_log.Recorder(Path(log), current_test)
        for node in made.values():
            recorder.wrap(node)
    return made


@pytest.fixture(scope="session")
def nodes(cluster, run_state, pytestconfig) -> dict:
    try:
        made = _recorded(pytestconfig, cluster_nodes.cluster_nodes(cluster, run_state.get("ssh")))
    except UserError as err:
        pytest.fail(str(err), pytrace=False)
    path = _snapshot_path(pytestconfig)
    served = []
    if path and path.exists():  # this pass's snapshot: the checks that only read are answered from it
        taken = snapshot.Snapshot.load(path)
        served = [snapshot.Served(node, taken.answers.get(name, {}), _current_test,
                                  live_only=lambda test: test.startswith(command_log.ACTING))
                  for name, node in made.items()]
    for node in made.values():
        guard_missing_commands(node)
    yield made
    if served:  # what this worker's checks consumed, for the re-read after the pass
        snapshot.save_consumed(path.with_name(f"{path.name}.consumed-{os.getpid()}"), served)
    cluster_nodes.close_all(made)


# ---- read once, check many: the pass's snapshot (calicolab/stack/snapshot.py) -----------------
SNAPSHOT_CHECK = "e2e/state_reads.py::the_snapshot_was_current_after_the_pass"


def _snapshot_path(pytestconfig: pytest.Config) -> Path | None:
    given = pytestconfig.getoption("snapshot")
    return Path(given) if given else None


def _controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")  # xdist's controller, or the only process


def _open_nodes(pytestconfig: pytest.Config) -> tuple[config.ClusterConfig, dict] | None:
    cluster_json, state_json = run_files(pytestconfig)
    try:
        cluster = config.from_effective(cluster_json)
        run = json.loads(state_json.read_text())
        made = cluster_nodes.cluster_nodes(cluster, run.get("ssh"))
    except (UserError, OSError, ValueError):
        return None  # the checks go live and say what is missing
    return cluster, _recorded(pytestconfig, made, lambda: "(snapshot)")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Before any worker runs a check: one round trip per node reads its declared state."""
    path = _snapshot_path(session.config)
    if not path or not _controller(session.config):
        return
    for old in [path, *path.parent.glob(f"{path.name}.consumed-*")]:
        old.unlink(missing_ok=True)
    opened = _open_nodes(session.config)
    if opened is None:
        return
    cluster, made = opened
    try:
        snapshot.take(made, {spec.name: state_reads.for_node(cluster, spec) for spec in cluster.nodes}).save(path)
    except UserError as err:  # a node unreachable: no snapshot, the checks say so live
        print(f"snapshot not taken: {err}", flush=True)
    finally:
        cluster_nodes.close_all(made)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After every check: what they consumed, read again live; a difference fails the pass."""
    path = _snapshot_path(session.config)
    if not path or not _controller(session.config) or not path.exists():
        return
    consumed = snapshot.load_consumed(sorted(path.parent.glob(f"{path.name}.consumed-*")))
    opened = _open_nodes(session.config)
    if opened is None:
        changes = [f"the nodes could not be reached to read the {sum(map(len, consumed.values()))} answers again"]
    else:
        _, made = opened
        try:
            changes = [c.text() for c in snapshot.recheck(made, snapshot.Snapshot.load(path), consumed,
                                                          state_reads.SAME_ANSWER)]
        except UserError as err:
            changes = [str(err)]
        finally:
            cluster_nodes.close_all(made)
    served = sum(len(tests) for cmds in consumed.values() for tests in cmds.values())
    session.config.stash[SNAPSHOT_LINE] = (
        f"snapshot: {served} answers served from one read per node, {sum(map(len, consumed.values()))} "
        f"commands read again after the pass: {'all current' if not changes else f'{len(changes)} changed'}")
    if changes:
        try:
            expect.fail("the snapshot's answers, read again after the pass", "the answers the checks were given",
                        "; ".join(changes), "the cluster changed while it was checked (a unit restarted, a "
                        "member re-elected, a key rewritten): its checks' verdicts may be stale; rerun the "
                        "pass, and see `invoke doctor` if it changes again")
        except expect.CheckFailed as failed:
            text = str(failed)
        for when, outcome in (("call", "failed"), ("teardown", "passed")):
            session.config.hook.pytest_runtest_logreport(report=pytest.TestReport(
                SNAPSHOT_CHECK, ("e2e/state_reads.py", 0, SNAPSHOT_CHECK.split("::")[1]), {}, outcome,
                text if outcome == "failed" else None, when))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


SNAPSHOT_LINE = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def calico_source(run_state) -> str:
    return run_state.get("calico_source", "unknown")


def _node_names(pytestconfig: pytest.Config) -> list[str]:
    """The cluster's node names, sorted (xdist needs the same order on every worker)."""
    cluster_json, _ = run_files(pytestconfig)
    try:
        cfg = config.from_effective(cluster_json) if cluster_json.exists() else config.load()
    except UserError as err:
        raise pytest.UsageError(f"the e2e tests cannot name the nodes: {err}") from None
    return sorted(n.name for n in cfg.nodes)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "node_name" in metafunc.fixturenames:  # one test per node
        metafunc.parametrize("node_name", _node_names(metafunc.config))


@pytest.fixture
def node(nodes, node_name):
    return nodes[node_name]


@pytest.fixture
def spec(cluster, node_name) -> config.Node:
    return cluster.node(node_name)


def pytest_collection_modifyitems(config, items):  # noqa: ARG001 - pytest hook signature
    """A pass is chosen by folder; its marker must agree, so a renamed marker or a test in the
    wrong folder cannot slip into another pass (or out of its own)."""
    wrong = []
    for item in items:
        folder = item.path.relative_to(HERE).parts[0] if item.path.is_relative_to(HERE) else ""
        marks = {m.name for m in item.iter_markers()}
        for where, mark in FOLDER_MARKS.items():
            if (folder == where) != (mark in marks):
                wrong.append(f"{item.nodeid} ({'lacks' if folder == where else 'has'} marker {mark!r})")
    if wrong:
        raise pytest.UsageError("tests whose marker does not match their folder (e2e/<folder> is the pass): "
                                + "; ".join(wrong[:5]))


def _calico_line(pytestconfig: pytest.Config) -> str | None:
    _, state_json = run_files(pytestconfig)
    if not (_is_e2e_run(pytestconfig) and state_json.exists()):
        return None
    run_state = json.loads(state_json.read_text())
    seen = run_state.get("calico_seen")
    return f"calico under test: {calico_label(run_state.get('calico_source', 'unknown'))}" + (
        f" [{seen}]" if seen else "")


def pytest_report_header(config):
    line = _calico_line(config)
    return [line, f"cluster: {run_files(config)[0]}"] if line else []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ARG001 - pytest hook signature
    report = yield
    # A failing e2e check: snapshot every node (calicolab/report/artifacts.py) and link the files.
    if report.failed and report.when in ("setup", "call"):
        artifacts.on_failed_test(item, report, *run_files(item.config))
    return report


def pytest_terminal_summary(terminalreporter):
    line = _calico_line(terminalreporter.config)
    if line:
        terminalreporter.write_line(line)
    said = terminalreporter.config.stash.get(SNAPSHOT_LINE, None)
    if said:
        terminalreporter.write_line(said)

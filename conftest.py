"""Fixtures for the e2e tests: the running cluster described by the run folder.

`invoke verify` points CALICOLAB_CLUSTER_JSON at the run's effective configuration; the
tests reach the nodes over the SSH settings Vagrant gave (state.json).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from calicolab.core import config
from calicolab.core.remote import Node, SshTarget
from calicolab.report.junit import calico_label

ROOT = Path(__file__).resolve().parent


def _run_files() -> tuple[Path, Path]:
    cluster_json = os.environ.get("CALICOLAB_CLUSTER_JSON")
    if cluster_json:
        return Path(cluster_json), Path(os.environ.get("CALICOLAB_STATE_JSON",
                                                       Path(cluster_json).with_name("state.json")))
    cfg = config.load()
    return cfg.run_path / "cluster.json", cfg.run_path / "state.json"


@pytest.fixture(scope="session")
def cluster() -> config.ClusterConfig:
    cluster_json, _ = _run_files()
    if not cluster_json.exists():
        pytest.fail(f"no running cluster ({cluster_json} missing): run `invoke up provision` first",
                    pytrace=False)
    return config.from_effective(cluster_json)


@pytest.fixture(scope="session")
def run_state() -> dict:
    _, state_json = _run_files()
    try:
        return json.loads(state_json.read_text())
    except FileNotFoundError:
        pytest.fail(f"no run state ({state_json}): run `invoke up provision` first", pytrace=False)


@pytest.fixture(scope="session")
def nodes(cluster, run_state) -> dict[str, Node]:
    ssh = run_state.get("ssh") or {}
    missing = [n.name for n in cluster.nodes if n.name not in ssh]
    if missing:
        pytest.fail(f"no SSH settings for {', '.join(missing)}: run `invoke up`", pytrace=False)
    made = {n.name: Node(SshTarget(**ssh[n.name]), n.ip) for n in cluster.nodes}
    yield made
    for node in made.values():
        node.close()


@pytest.fixture(scope="session")
def calico_source(run_state) -> str:
    return run_state.get("calico_source", "unknown")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # One test per node, with stable sorted ids (xdist needs the same order on every worker).
    if "node_name" in metafunc.fixturenames:
        try:
            cluster_json, _ = _run_files()
            cfg = config.from_effective(cluster_json) if cluster_json.exists() else config.load()
            names = sorted(n.name for n in cfg.nodes)
        except Exception:
            names = ["node1", "node2"]
        metafunc.parametrize("node_name", names)


@pytest.fixture
def node(nodes, node_name) -> Node:
    return nodes[node_name]


@pytest.fixture
def spec(cluster, node_name) -> config.Node:
    return cluster.node(node_name)


def _is_e2e_run() -> bool:
    return bool(os.environ.get("CALICOLAB_CLUSTER_JSON"))


def _calico_line() -> str | None:
    _, state_json = _run_files()
    if not (_is_e2e_run() and state_json.exists()):
        return None
    source = json.loads(state_json.read_text()).get("calico_source", "unknown")
    return f"calico under test: {calico_label(source)}"


def pytest_report_header(config):  # noqa: ARG001 - pytest hook signature
    line = _calico_line()
    return [line, f"cluster: {_run_files()[0]}"] if line else []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ARG001 - pytest hook signature
    report = yield
    # A failing e2e check: snapshot every node (calicolab/artifacts.py) and link the files.
    if report.failed and report.when in ("setup", "call") and item.path.is_relative_to(ROOT / "e2e"):
        from calicolab.report import artifacts

        artifacts.on_failed_test(item, report, *_run_files())
    return report


def pytest_terminal_summary(terminalreporter):
    line = _calico_line()
    if line:
        terminalreporter.write_line(line)

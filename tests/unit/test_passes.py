"""The verify stage's passes are chosen by folder and cannot pass empty: an emptied folder, a
renamed or misspelt marker, or a test in the wrong folder fails the pass. Real pytest runs
against a small e2e tree with the project's own e2e/conftest.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from calicolab.core import config, paths, state
from calicolab.core.errors import StageFailed
from calicolab.runs import passes
from calicolab.runs.lifecycle import Lifecycle

PASSING = "def test_fine():\n    assert True\n"


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "e2e"
    root.mkdir()
    shutil.copy(paths.ROOT / "e2e" / "conftest.py", root / "conftest.py")
    cfg = config.load({"run_dir": str(tmp_path / "run"), "reports_dir": str(tmp_path / "reports")}, environ={})
    return root, cfg


def _test_file(root: Path, folder: str, text: str) -> None:
    (root / folder).mkdir(exist_ok=True)
    (root / folder / f"test_{folder}.py").write_text(f"import pytest\n\n{text}")


def _run(tree, test_pass, extra=()):
    root, cfg = tree
    rc = passes.run_pytest(cfg, test_pass, list(extra), root)
    return rc, passes.verdict(test_pass, rc, list(extra))


def test_a_pass_with_its_tests_and_markers_in_place_passes(tree):
    _test_file(tree[0], "faults", f"pytestmark = [pytest.mark.disruptive]\n\n{PASSING}")
    assert _run(tree, passes.FAULTS) == (0, (True, ""))


def test_an_emptied_pass_fails(tree):
    (tree[0] / "faults").mkdir()
    rc, (ok, note) = _run(tree, passes.FAULTS)
    assert rc == passes.NO_TESTS and not ok and "collected no tests" in note


def test_a_pass_narrowed_to_nothing_by_the_user_is_said_not_failed(tree):
    _test_file(tree[0], "faults", f"pytestmark = [pytest.mark.disruptive]\n\n{PASSING}")
    rc, (ok, note) = _run(tree, passes.FAULTS, ["-k", "no_such_test"])
    assert rc == passes.NO_TESTS and ok and "narrowed by --pytest-args" in note


def test_a_renamed_marker_fails_the_pass(tree):
    _test_file(tree[0], "faults", f"pytestmark = [pytest.mark.disruptiv]\n\n{PASSING}")  # not registered
    rc, (ok, _) = _run(tree, passes.FAULTS)
    assert rc not in (0, passes.NO_TESTS) and not ok


def test_a_fault_test_without_its_marker_fails_the_pass(tree):
    _test_file(tree[0], "faults", PASSING)
    rc, (ok, _) = _run(tree, passes.FAULTS)
    assert rc not in (0, passes.NO_TESTS) and not ok


def test_a_disruptive_test_outside_the_faults_folder_fails_the_read_only_pass(tree):
    _test_file(tree[0], "hosts", f"@pytest.mark.disruptive\n{PASSING}")
    read_only = passes.TestPass("read-only checks", ("hosts",), False, "e2e.xml")
    rc, (ok, _) = _run(tree, read_only)
    assert rc not in (0, passes.NO_TESTS) and not ok


def test_verify_fails_on_a_pass_that_collected_nothing(tmp_path, monkeypatch):
    cfg = config.load({"run_dir": str(tmp_path / "run"), "reports_dir": str(tmp_path / "reports")}, environ={})
    state.update(cfg, provisioned=True)
    lc = Lifecycle(cfg, say=lambda _m: None)
    monkeypatch.setattr(lc.vagrant, "is_running", lambda: True)
    monkeypatch.setattr(passes, "run_pytest", lambda *_a, **_k: passes.NO_TESTS)
    with pytest.raises(StageFailed, match="collected no tests"):
        lc.verify([], "read-only")
    lc.verify(["-k", "nothing"], "read-only")  # the user narrowed it: said, not failed


def test_node_names_come_from_the_cluster_or_collection_stops(tree, tmp_path):
    # The old conftest fell back to hard-coded node1/node2 on any error.
    root, cfg = tree
    _test_file(root, "hosts", "def test_one(node_name):\n    assert node_name\n")
    broken = tmp_path / "run" / "cluster.json"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text("{not json")
    read_only = passes.TestPass("read-only checks", ("hosts",), False, "e2e.xml")
    rc, (ok, _) = _run(tree, read_only)
    assert rc not in (0, passes.NO_TESTS) and not ok


def test_the_run_folder_and_the_plants_reach_the_tests_as_options_not_the_environment(tree, monkeypatch):
    # The pass's pytest is told cluster.json (with the run's deadline factor) and this task's
    # plants on its command line; a variable of the old hand-off left in the environment is ignored.
    root, cfg = tree
    cfg = config.with_plants(cfg, config.parse_plants(["probe=blackhole", "fault=bgp-drop:4"]))
    config.write_effective(cfg, {"deadline_factor": 5})
    monkeypatch.setenv("CALICOLAB_CLUSTER_JSON", "/nonexistent/cluster.json")
    _test_file(root, "hosts", "from calicolab.core import deadlines\n\n"
                              "def test_handed_on(cluster, cluster_json):\n"
                              f"    assert str(cluster_json) == {str(cfg.run_path / 'cluster.json')!r}\n"
                              "    assert (cluster.plants.probe, cluster.plants.fault_seconds) == ('blackhole', 4.0)\n"
                              "    assert deadlines.deadline_factor() == 5.0\n")
    command = passes.command(cfg, passes.TestPass("read-only checks", ("hosts",), False, "e2e.xml"), [], root)
    assert command[command.index("--cluster-json") + 1] == str(cfg.run_path / "cluster.json")
    assert _run((root, cfg), passes.TestPass("read-only checks", ("hosts",), False, "e2e.xml")) == (0, (True, ""))


def test_a_bad_plant_stops_the_pass_before_any_test(tree):
    root, cfg = tree
    _test_file(root, "hosts", PASSING)
    read_only = passes.TestPass("read-only checks", ("hosts",), False, "e2e.xml")
    rc, (ok, _) = _run(tree, read_only, ["--plant", "probe=drop-everything"])
    assert rc not in (0, passes.NO_TESTS) and not ok

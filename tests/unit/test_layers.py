"""The import rules hold for the project, and the checker finds each kind of breach."""

from __future__ import annotations

from pathlib import Path

from calicolab import layers


def test_the_project_has_no_upward_import_no_cycle_and_no_unexplained_nested_import():
    assert [str(p) for p in layers.check()] == []


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_checker_finds_an_upward_import_a_cycle_and_a_silent_nested_import(tmp_path):
    for pkg in ("calicolab", "calicolab/core", "calicolab/runs", "provision"):
        _write(tmp_path, f"{pkg}/__init__.py", "")
    _write(tmp_path, "calicolab/core/config.py", "from calicolab.runs import lifecycle\n")  # core -> runs
    _write(tmp_path, "calicolab/runs/lifecycle.py", "from calicolab.runs import matrix\n")
    _write(tmp_path, "calicolab/runs/matrix.py", "from calicolab.runs.lifecycle import x\n")  # a cycle
    _write(tmp_path, "provision/hosts.py", "def f():\n    from calicolab.core import config\n"
                                           "def g():\n    import json  # here: the reason\n")
    found = [str(p) for p in layers.check(tmp_path)]
    assert any("calicolab/core/config.py:1" in p and "calicolab.core must not import calicolab.runs" in p
               for p in found), found
    assert any(p.startswith("calicolab.runs.lifecycle -> calicolab.runs.matrix -> calicolab.runs.lifecycle")
               for p in found), found
    assert any("provision/hosts.py:2" in p and "inside a function" in p for p in found), found
    assert not any("provision/hosts.py:4" in p for p in found), found  # explained by its comment
    assert len(found) == 3, found


def test_an_e2e_check_may_not_take_its_expected_values_from_provisioning(tmp_path):
    # The old e2e/test_hosts.py read its expected sysctls from provision.hosts.SYSCTL.
    for pkg in ("e2e", "e2e/hosts", "provision"):
        _write(tmp_path, f"{pkg}/__init__.py", "")
    _write(tmp_path, "provision/hosts.py", "SYSCTL = {}\n")
    _write(tmp_path, "e2e/hosts/test_hosts.py", "from provision.hosts import SYSCTL\n")
    found = [str(p) for p in layers.check(tmp_path)]
    assert len(found) == 1 and "e2e must not import provision.hosts" in found[0], found


def test_the_measured_window_and_the_etcd_histories_may_not_import_what_uses_them(tmp_path):
    # measure serves faults, rehearsals and drills: an import of the upgrader (its Hop once lived
    # there) would tie the fault pass to upgrades; etcd_history sits below measure.
    for pkg in ("calicolab", "calicolab/etcd_history", "calicolab/measure", "calicolab/upgrade"):
        _write(tmp_path, f"{pkg}/__init__.py", "")
    _write(tmp_path, "calicolab/upgrade/upgrader.py", "from calicolab.measure.step_figures import Hop\n")
    _write(tmp_path, "calicolab/measure/step_figures.py", "from calicolab.upgrade.upgrader import Upgrader\n")
    _write(tmp_path, "calicolab/measure/etcd_leader.py", "from calicolab.etcd_history import etcd_client\n")
    _write(tmp_path, "calicolab/etcd_history/etcd_client.py", "from calicolab.measure import window\n")
    _write(tmp_path, "calicolab/measure/window.py", "")
    found = [str(p) for p in layers.check(tmp_path)]
    assert any("calicolab/measure/step_figures.py:1" in p and "calicolab.measure must not import "
               "calicolab.upgrade.upgrader" in p for p in found), found
    assert any("calicolab/etcd_history/etcd_client.py:1" in p and "calicolab.etcd_history must not import "
               "calicolab.measure.window" in p for p in found), found
    # the two downward imports are allowed
    assert not any("upgrader.py" in p or "etcd_leader.py" in p for p in found), found


def test_no_module_outside_the_config_layer_reads_a_calicolab_variable(tmp_path):
    for pkg in ("calicolab", "calicolab/core", "calicolab/runs", "calicolab/infra", "e2e", "e2e/faults"):
        _write(tmp_path, f"{pkg}/__init__.py", "")
    # The config layer reads the environment: allowed there only.
    _write(tmp_path, "calicolab/core/config.py", 'import os\nX = os.environ.get("CALICOLAB_PREFIX")\n'
                                                 'ENV = "CALICOLAB_CLUSTER_FILE"\n')
    # The shapes such reads took before issue 25, one per line.
    _write(tmp_path, "calicolab/runs/lifecycle.py", "\n".join([
        "import os",
        'lane = os.environ.get("CALICOLAB_LANE")',                                 # 2: get
        'limit = int(os.getenv("CALICOLAB_ARTIFACT_LIMIT", "12"))',                # 3: getenv
        'def cache(environ):\n    return environ["CALICOLAB_BOX_CACHE"]',           # 5: a passed environ
        'planted = "CALICOLAB_PROBE_PLANT" in os.environ',                         # 6: membership
        'def f(k):\n    return os.environ.get(f"CALICOLAB_{k.upper()}")',           # 8: an f-string
        'env = {k: v for k, v in os.environ.items() if not k.startswith("CALICOLAB_")}',  # 9: by prefix
        ""]))
    _write(tmp_path, "e2e/faults/conftest.py", 'import os\nPLANT_ENV = "CALICOLAB_FAULT_PLANT"\n'
                                               'plant = os.environ.get(PLANT_ENV, "")\n')
    # Not reads: a message naming a variable, and a child's environment written for a non-Python tool.
    _write(tmp_path, "calicolab/infra/vagrant_env.py",
           'import os\nenv = dict(os.environ, CALICOLAB_CONFIG="x")\n'
           'HINT = "pick another folder with --run-dir or CALICOLAB_RUN_DIR"\n'
           'def f():\n    raise ValueError("set CALICOLAB_ETCD_TLS=true")\n')
    found = [str(p) for p in layers.check(tmp_path)]
    lines = sorted(p.split(":")[0] + ":" + p.split(":")[1] for p in found)
    assert lines == [*(f"calicolab/runs/lifecycle.py:{n}" for n in (2, 3, 5, 6, 8, 9)),
                     "e2e/faults/conftest.py:2"], found
    assert all("outside the config layer" in p for p in found), found


def test_the_project_reads_no_calicolab_variable_outside_the_config_layer_and_a_planted_read_fails(tmp_path):
    assert [str(p) for p in layers.check() if "config layer" in p.what] == []
    # The same check on a copy of one real module with one read planted in it.
    real = layers.ROOT / "calicolab" / "runs" / "matrix.py"
    _write(tmp_path, "calicolab/__init__.py", "")
    _write(tmp_path, "calicolab/runs/__init__.py", "")
    _write(tmp_path, "calicolab/runs/matrix.py", real.read_text() + '\nLANE = os.environ.get("CALICOLAB_LANE")\n')
    found = [str(p) for p in layers.environment_reads(tmp_path / "calicolab/runs/matrix.py", tmp_path)]
    assert len(found) == 1 and "calicolab/runs/matrix.py:" in found[0], found

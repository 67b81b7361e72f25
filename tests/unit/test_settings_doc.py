"""docs/settings.md is generated from the one table of settings (config.SETTINGS) and the tasks'
flags: it fails here when stale; `invoke config --write-doc` writes it again."""

import importlib.util

from calicolab.core import config, paths
from calicolab.core.settings_doc import DOC, render_settings_doc

ROOT = paths.ROOT


def _tasks_module():
    spec = importlib.util.spec_from_file_location("tasks_for_doc", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_settings_md_is_current():
    want = render_settings_doc(_tasks_module().settings_flags())
    assert DOC.read_text() == want, "docs/settings.md is stale: run `invoke config --write-doc` and commit it"


def test_every_setting_has_a_row_with_its_variable():
    text = DOC.read_text()
    for setting in config.SETTINGS.values():
        where = f"`{setting.yaml_key}`" if setting.path else f"- (machine: `{setting.key}`)"
        assert f"| {where} | `{setting.env}` |" in text


def test_every_plant_kind_has_a_row():
    text = DOC.read_text()
    assert "## Test-only plants" in text
    for kind in ("fault", "history", "probe", "bgp-query"):  # the plants the e2e tests and rehearsals take
        assert f"| `{kind}` |" in text


def test_the_flag_column_names_the_tasks_that_take_it():
    flags = _tasks_module().settings_flags()
    assert "e2e" in flags["vm_os"] and "upgrade.*" in flags["prefix"]
    assert "no_proxy" not in flags and "artifact_limit" not in flags  # environment and cluster.yaml only
    assert "vm_cpus" in flags and "e2e" in flags["vm_cpus"]  # a matrix lane sets it on its e2e
    assert "image_namespace" not in flags  # a machine setting: the environment only
    row = next(line for line in DOC.read_text().splitlines() if line.startswith("| `vm_os` |"))
    assert "`--os` (" in row


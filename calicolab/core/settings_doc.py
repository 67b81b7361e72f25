"""docs/settings.md, generated from the one table of settings (config.SETTINGS). `invoke config
--write-doc` writes it again; tests/unit/test_settings_doc.py fails when it is stale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from calicolab.core.config import CLUSTER_FILE_ENV, PLANTS, SETTINGS, Setting
from calicolab.core.paths import ROOT

DOC = ROOT / "docs" / "settings.md"

INTRO = f"""# Settings

<!-- Generated from calicolab/core/config.py (SETTINGS) by `invoke config --write-doc`;
     tests/unit/test_settings_doc.py fails when this file is stale. Edit the table there. -->

What you do: edit `cluster.yaml` (the one file users edit), or override one setting for a
run with its environment variable or its task flag. `invoke config` prints every setting's
effective value and where it came from:

```
invoke config                      # value and source of every setting
invoke config --provider libvirt   # the same, as `invoke e2e --provider libvirt` would see it
```

Later layers win: the default (below; also the value shipped in cluster.yaml), then
cluster.yaml, then the environment variable, then the flag. `{CLUSTER_FILE_ENV}` names another
file to read instead of cluster.yaml. The tasks write the effective configuration to
`<run_dir>/cluster.json`; the Vagrantfile and later stages read that file, so Python and Ruby
never describe the cluster twice. A cluster that is up keeps the settings it was brought up
with: a task given a different value is refused (`invoke destroy` first), except for the
settings marked "yes" under "may change while up".

A version setting is one version for every provider, or one per versions.yaml column
(`lab`: the docker provider and Debian VMs; `vm`: the CentOS 7 VMs); a flag or environment
variable is one version and replaces both. A machine setting describes this machine, not a
cluster (where images and boxes are kept): it has no cluster.yaml key and is set in the
environment only.

The environment is read for these variables only, by the configuration layer
(calicolab/core/config.py; `python -m calicolab.layers` checks that no other module reads a
`CALICOLAB_*` variable). The project's own processes hand values to each other as
command-line options and through the run folder, not the environment: `invoke matrix` starts
each lane as `invoke e2e` with its settings as flags, and `invoke verify` starts pytest with
`--cluster-json <run_dir>/cluster.json` (which also carries the run's deadline factor). A
matrix lane keeps the caller's variables of the site and machine settings (`upstream.*`, the
ones that may change while up, the machine settings) and none of its other `CALICOLAB_*` ones.

| cluster.yaml | environment | flag (tasks) | type | default | may change while up | what |
|---|---|---|---|---|---|---|
"""


PLANTS_INTRO = """
## Test-only plants

A plant is a fault or a load a run adds on purpose, so that a check shows it catches (or
survives) it; a normal run has none. Plants are options, never settings: `--plant KIND=VALUE`,
repeatable, on `invoke e2e`, `verify`, `upgrade` (`rolling`, `drill`), passed on to the e2e
tests as the same pytest option. They are not read from the environment and not written into
cluster.json, so no later task inherits one. A test failing under its plant is the expected
result.

| kind | value |
|---|---|
"""


def _default(setting: Setting) -> str:
    value = setting.default
    if isinstance(value, dict):
        return ", ".join(f"{column}: {version}" for column, version in value.items())
    if isinstance(value, bool):
        return str(value).lower()
    return '""' if value == "" else str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_settings_doc(tasks_by_setting: Mapping[str, Sequence[str]]) -> str:
    """The page: one row per declared setting; tasks_by_setting names the tasks taking its flag."""
    rows = []
    for key, setting in SETTINGS.items():
        tasks = tasks_by_setting.get(key) or ()
        flag = f"`{setting.option}` ({', '.join(tasks)})" if tasks else "-"
        where = f"`{setting.yaml_key}`" if not setting.machine else f"- (machine: `{setting.key}`)"
        rows.append(f"| {where} | `{setting.env}` | {_cell(flag)} | {setting.kind} | "
                    f"`{_default(setting)}` | {'yes' if setting.live else 'no'} | {_cell(setting.help)} |")
    plants = [f"| `{kind}` | {_cell(values)} |" for kind, values in PLANTS.items()]
    return INTRO + "\n".join(rows) + "\n" + PLANTS_INTRO + "\n".join(plants) + "\n"


def write_settings_doc(tasks_by_setting: Mapping[str, Sequence[str]], path: Path = DOC) -> Path:
    path.write_text(render_settings_doc(tasks_by_setting))
    return path

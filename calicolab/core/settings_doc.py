"""docs/settings.md, generated from the one table of settings (config.SETTINGS). `invoke config
--write-doc` writes it again; tests/unit/test_settings_doc.py fails when it is stale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from calicolab.core.config import CLUSTER_FILE_ENV, SETTINGS, Setting
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
variable is one version and replaces both.

| cluster.yaml | environment | flag (tasks) | type | default | may change while up | what |
|---|---|---|---|---|---|---|
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
        rows.append(f"| `{setting.yaml_key}` | `{setting.env}` | {_cell(flag)} | {setting.kind} | "
                    f"`{_default(setting)}` | {'yes' if setting.live else 'no'} | {_cell(setting.help)} |")
    return INTRO + "\n".join(rows) + "\n"


def write_settings_doc(tasks_by_setting: Mapping[str, Sequence[str]], path: Path = DOC) -> Path:
    path.write_text(render_settings_doc(tasks_by_setting))
    return path

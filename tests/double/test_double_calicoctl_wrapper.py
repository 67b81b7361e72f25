"""The host's calicoctl (calico_double/calicoctl.sh): the script on the host's python3 where
provisioning put it beside the wrapper, a throwaway container of the double's image otherwise,
and `node` commands refused to non-root either way, in calicoctl v1.6.1's words."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from calicolab.core.paths import ROOT

WRAPPER = ROOT / "calico_double" / "calicoctl.sh"


def _host(tmp_path: Path, script: bool, python: bool) -> tuple[Path, dict[str, str]]:
    """A /usr/local-like tree with the wrapper, and a PATH whose docker and python3 say how they
    were called."""
    (tmp_path / "bin").mkdir()
    wrapper = tmp_path / "bin" / "calicoctl"
    shutil.copy(WRAPPER, wrapper)
    if script:
        (tmp_path / "lib" / "calico-double").mkdir(parents=True)
        (tmp_path / "lib" / "calico-double" / "calicoctl").write_text("# the double's script\n")
    tools = tmp_path / "tools"
    tools.mkdir()
    names = ["docker", "python3"] if python else ["docker"]
    for name in names:
        (tools / name).write_text(f'#!/bin/sh\necho "{name} $*"\n')
        (tools / name).chmod(0o755)
    # sh, sed and id from the system; no python3 there unless the test gives one.
    system = tmp_path / "system"
    system.mkdir()
    for tool in ("sh", "sed", "id", "dirname", "tail"):
        (system / tool).symlink_to(shutil.which(tool))
    return wrapper, {"PATH": f"{tools}:{system}", "CALICO_DOUBLE_IMAGE": "calicolab/calico-node-double:v2.6.1"}


def _run(wrapper: Path, env: dict[str, str], *args: str) -> str:
    res = subprocess.run([str(wrapper), *args], env=env, capture_output=True, text=True, timeout=20, check=False)
    return res.stdout.strip()


def test_runs_on_the_hosts_python_when_the_script_is_beside_it(tmp_path) -> None:
    wrapper, env = _host(tmp_path, script=True, python=True)
    seen = _run(wrapper, env, "get", "node")
    assert seen == f"python3 {tmp_path}/bin/../lib/calico-double/calicoctl get node"


@pytest.mark.parametrize("script,python", [(False, True), (True, False)])
def test_otherwise_in_a_throwaway_container(tmp_path, script, python) -> None:
    wrapper, env = _host(tmp_path, script=script, python=python)
    seen = _run(wrapper, env, "get", "node")
    assert seen.startswith("docker run --rm -i --net=host --pid=host -v /var/run/calico:/var/run/calico")
    assert seen.endswith("--entrypoint calicoctl calicolab/calico-node-double:v2.6.1 get node")


def test_node_commands_need_root(tmp_path) -> None:
    wrapper, env = _host(tmp_path, script=True, python=True)
    (tmp_path / "tools" / "id").write_text("#!/bin/sh\necho 1000\n")  # a user, whoever runs the test
    (tmp_path / "tools" / "id").chmod(0o755)
    assert _run(wrapper, env, "node", "status") == "Need super user privileges: Operation not permitted"
    assert _run(wrapper, env, "get", "node").startswith("python3 ")  # `get` needs no root

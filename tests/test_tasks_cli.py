"""Bad input on the command line: one line, non-zero exit, no traceback, nothing created."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _invoke(*args, env=None):
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.mark.parametrize("args,fragment", [
    (["e2e", "--provider", "hyperv"], "unknown provider 'hyperv'"),
    (["up", "--etcd", "3.6.0"], "etcd 3.6.0 refused"),
    (["e2e", "--docker", "26.1.5"], "docker 26.1.5 refused"),
    (["e2e", "--subnet", "192.168.300.0/24"], "malformed subnet"),
    (["e2e", "--run-dir", "/dev/null/run"], "cannot be written"),
    (["e2e", "--destroy", "sometimes"], "unknown destroy policy 'sometimes'"),
    (["ssh", "node9"], "unknown node 'node9'"),
])
def test_bad_input_gives_one_line_and_exit_2(args, fragment):
    res = _invoke(*args)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_every_task_has_a_docstring_and_help():
    res = _invoke("--list")
    for name in ("setup", "box", "up", "provision", "verify", "destroy", "ssh", "e2e", "bench", "test"):
        assert f"  {name} " in res.stdout
    help_text = _invoke("--help", "e2e").stdout
    assert "--destroy" in help_text and "always (default)" in help_text

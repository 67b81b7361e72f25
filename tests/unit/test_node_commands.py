"""Commands under sudo's secure_path (issue 22, defect 1) and "the command is missing or cannot
run" told apart from a component's answer (defect 12).

Facts used: CentOS 7.9's /etc/sudoers (sudo 1.8.23) sets
`Defaults secure_path = /sbin:/bin:/usr/sbin:/usr/bin`; the suite installs calicoctl as
/usr/local/bin/calicoctl (the guide's place; provision/calico.py and calicolab/stack/downloads.py);
POSIX sh (XCU 2.8.2) exits 127 for a command not found and 126 for one found but not executable.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest

from calicolab.core import node_commands, remote
from calicolab.core.remote import CommandResult
from e2e import expect

ROOT = Path(__file__).resolve().parents[2]
CENTOS7_SECURE_PATH = "/sbin:/bin:/usr/sbin:/usr/bin"  # CentOS 7.9 /etc/sudoers
DEBIAN_SECURE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Debian 12 /etc/sudoers
# Programs the suite installs outside CentOS 7's secure_path, and where (provision/calico.py).
INSTALLED_OUTSIDE = {"calicoctl": "/usr/local/bin/calicoctl"}
# A program name in command position: at the start, or after ; & | ( $( ` or a `sh -c '` quote.
COMMAND_POSITION = r"(?:^|[;&|(`]|\$\(|sh -c ['\"])\s*(?:[A-Za-z_]\w*=\S*\s+)*{name}(?=\s|$|['\";|&)])"


# -- one declaration, and no bare call left -------------------------------------------------
def test_the_declared_path_is_where_provisioning_installs_calicoctl():
    from calicolab.stack import downloads
    from provision import calico
    assert INSTALLED_OUTSIDE["calicoctl"] == node_commands.CALICOCTL
    assert calico.CALICOCTL == downloads.CALICOCTL == node_commands.CALICOCTL
    assert node_commands.calicoctl("node status") == "/usr/local/bin/calicoctl node status"
    assert not any(os.path.dirname(p) in CENTOS7_SECURE_PATH.split(":")
                   for p in node_commands.OUTSIDE_SECURE_PATH.values())


def _command_text(arg: ast.expr) -> str | None:
    """A call's command argument as text (an f-string's fields as {}), None when not a literal."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in arg.values)
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Add):
        left, right = _command_text(arg.left), _command_text(arg.right)
        return None if left is None and right is None else (left or "{}") + (right or "{}")
    return None


# Functions that take a node command line as their first or second positional argument.
COMMAND_TAKERS = {"run": 0, "ask": 1, "_shell_probe": 1}


def invocations(source: str, filename: str = "<source>") -> list[tuple[int, str, str]]:
    """(line, tool, command) for each node command string in source that calls an installed tool
    by its bare name (found by PATH, which under CentOS 7's sudo does not reach /usr/local/bin)."""
    patterns = {name: re.compile(COMMAND_POSITION.format(name=re.escape(name)), re.M) for name in INSTALLED_OUTSIDE}
    found = []
    for call in ast.walk(ast.parse(source, filename)):
        if not isinstance(call, ast.Call):
            continue
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        index = COMMAND_TAKERS.get(name)
        text = _command_text(call.args[index]) if index is not None and len(call.args) > index else None
        found += [(call.lineno, tool, text) for tool, pattern in patterns.items()
                  if text is not None and pattern.search(text)]
    return found


def test_no_node_command_calls_an_installed_tool_by_its_bare_name():
    found = [f"{path.relative_to(ROOT)}:{line}: {tool} in {text!r}"
             for folder in ("calicolab", "e2e", "provision") for path in sorted((ROOT / folder).rglob("*.py"))
             for line, tool, text in invocations(path.read_text(), str(path))]
    assert found == []


def test_the_scan_finds_the_forms_the_suite_used():
    # The shapes the old code had (node.run, a lambda's run, _shell_probe, f-strings, after `;`),
    # and two it must leave alone: the absolute path, and a message that only names calicoctl.
    src = ("node.run('calicoctl node status')\nfirst.run(f'calicoctl get node', timeout=60)\n"
           "_shell_probe('f.txt', 'calicoctl node status')\nnode.run(f'ETCDCTL_API=2 x; calicoctl get {k}')\n"
           "node.run('/usr/local/bin/calicoctl node status')\nexpect.fail('calicoctl node status', 1, 2)\n")
    assert [line for line, _tool, _text in invocations(src)] == [1, 2, 3, 4]


# -- the command line as remote.py runs it, under CentOS 7's secure_path ---------------------
@pytest.fixture
def usr_local(tmp_path: Path) -> Path:
    """A root-like tree whose usr/local/bin holds a calicoctl that answers like calicoctl v1.6.1."""
    bin_dir = tmp_path / "usr" / "local" / "bin"
    bin_dir.mkdir(parents=True)
    tool = bin_dir / "calicoctl"
    tool.write_text("#!/bin/sh\necho 'Calico process is running.'\n")
    tool.chmod(0o755)
    return tmp_path


def _as_sudo_runs(cmd: str, path: str, shell: str = "/bin/sh") -> CommandResult:
    """`sudo -n sh -c <cmd>` as remote.py runs it, without sudo: the same sh -c with only the PATH
    sudo's secure_path gives (env -i: nothing of this test's environment leaks in). /bin/sh is
    dash here (Debian); /bin/bash is run under the name sh, as CentOS 7's /bin/sh -> bash is."""
    argv = [shell, "-c", cmd] if shell == "/bin/sh" else ["/bin/bash", "-c", 'exec -a sh /bin/bash -c "$1"', "x", cmd]
    proc = subprocess.run(["env", "-i", f"PATH={path}", *argv], capture_output=True, text=True, timeout=30,
                          check=False)
    return CommandResult("node1", cmd, proc.returncode, proc.stdout, proc.stderr)


def _rooted(cmd: str, root: Path) -> str:
    """The command as it would resolve on a node whose / is `root` (absolute paths only)."""
    return cmd.replace("/usr/local/bin/", f"{root}/usr/local/bin/")


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_bare_calicoctl_exits_127_under_centos_secure_path_and_the_declared_form_runs(usr_local, shell):
    debian_path = DEBIAN_SECURE_PATH.replace("/usr/local/bin", f"{usr_local}/usr/local/bin")
    centos_path = CENTOS7_SECURE_PATH
    # Debian's secure_path reaches /usr/local/bin: the bare form works there (why the lab hid it).
    assert _as_sudo_runs("calicoctl node status", debian_path, shell).stdout == "Calico process is running.\n"
    bare = _as_sudo_runs("calicoctl node status", centos_path, shell)
    assert bare.rc == 127 and bare.stdout == ""
    assert bare.cannot_run is not None and bare.cannot_run.command == "calicoctl"
    declared = _as_sudo_runs(_rooted(node_commands.calicoctl("node status"), usr_local), centos_path, shell)
    assert (declared.rc, declared.stdout) == (0, "Calico process is running.\n")
    assert declared.cannot_run is None


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_the_shells_own_messages_are_classified(usr_local, shell):
    tool = usr_local / "usr" / "local" / "bin" / "calicoctl"
    tool.chmod(0o644)  # found but not executable: 126 (execve needs an x bit, for root too)
    denied = _as_sudo_runs(f"{tool} node status", CENTOS7_SECURE_PATH, shell)
    assert denied.rc == 126 and denied.cannot_run is not None and "permission denied" in denied.cannot_run.why
    tool.unlink()
    gone = _as_sudo_runs(f"{tool} node status", CENTOS7_SECURE_PATH, shell)
    assert gone.rc == 127 and gone.cannot_run is not None and gone.cannot_run.command == str(tool)
    # In a pipeline the last command sets the exit status; the shell's line still names the missing one.
    piped = _as_sudo_runs("calicoctl node status | grep -c running", CENTOS7_SECURE_PATH, shell)
    assert piped.rc == 1 and piped.cannot_run is not None and piped.cannot_run.command == "calicoctl"
    # A program's own "No such file" about a file, and the shell's about a redirection, are answers.
    for cmd in ("cat /nonexistent/etcd.conf", "cat < /nonexistent/etcd.conf"):
        answered = _as_sudo_runs(cmd, CENTOS7_SECURE_PATH, shell)
        assert answered.rc in (1, 2) and "No such file" in answered.stderr and answered.cannot_run is None, answered
    # A component's non-zero answer is not a missing command.
    assert _as_sudo_runs("exit 3", CENTOS7_SECURE_PATH, shell).cannot_run is None
    # `command -v X` answers whether X exists: dash says "no" with 127 and no message (bash with 1),
    # which is an answer about X (the restore drill asks for etcdutl), not a missing `command`.
    absent = _as_sudo_runs("command -v etcdutl", CENTOS7_SECURE_PATH, shell)
    assert absent.rc in (1, 127) and absent.stdout == "" and absent.cannot_run is None, absent
    # ... and a missing program later in the same line still counts.
    later = _as_sudo_runs("command -v etcdutl; calicoctl node status", CENTOS7_SECURE_PATH, shell)
    assert later.rc == 127 and later.cannot_run is not None and later.cannot_run.command == "calicoctl"


def test_sudos_own_refusal_is_a_command_that_did_not_run():
    refused = CommandResult("node1", "true", 1, "", "sudo: a password is required\n")  # sudo -n without NOPASSWD
    assert refused.cannot_run is not None and refused.cannot_run.command == "sudo"
    with pytest.raises(remote.CommandUnavailable, match="missing or cannot run"):
        refused.ran()


def test_missing_text_names_command_node_path_and_what_to_do():
    res = CommandResult("node2", "calicoctl get node", 127, "", "sh: calicoctl: command not found\n",
                        path=CENTOS7_SECURE_PATH)
    text = res.describe()
    assert "`calicoctl get node` on node2" in text and "missing or cannot run" in text
    assert f"PATH in effect: {CENTOS7_SECURE_PATH}" in text and "absolute path" in text
    with pytest.raises(remote.CommandUnavailable) as err:
        res.ran()
    assert err.value.result is res


# -- e2e's expect helpers --------------------------------------------------------------------
def test_command_ok_says_missing_instead_of_the_components_cause():
    res = CommandResult("node1", "calicoctl get node", 127, "", "sh: 1: calicoctl: not found\n")
    with pytest.raises(expect.CheckFailed) as err:
        expect.command_ok(res, "calicoctl cannot reach etcd (ETCD_ENDPOINTS)")
    text = str(err.value)
    assert "missing or cannot run" in text and "node1" in text and "calicoctl" in text
    assert "PATH" in text and "absolute path" in text
    assert "cannot reach etcd" not in text  # no component verdict for a command that never ran


def test_command_ok_keeps_the_components_cause_for_a_real_answer():
    res = CommandResult("node1", "/usr/local/bin/calicoctl get node", 1, "", "client: etcd cluster is unavailable\n")
    with pytest.raises(expect.CheckFailed) as err:
        expect.command_ok(res, "calicoctl cannot reach etcd (ETCD_ENDPOINTS)")
    assert "cannot reach etcd" in str(err.value) and "missing" not in str(err.value)


def test_ran_passes_a_result_that_ran_whatever_it_answered():
    answered = CommandResult("node1", "systemctl is-active calico-node", 3, "failed\n", "")
    assert expect.ran(answered) is answered
    with pytest.raises(expect.CheckFailed, match="missing or cannot run"):
        expect.ran(CommandResult("node1", "systemctl is-active calico-node", 126, "", ""))


# -- Node.run: the PATH sudo gave, looked up only when a command did not run -------------------
class _Answer:
    def __init__(self, exited: int, stdout: str = "", stderr: str = "") -> None:
        self.exited, self.stdout, self.stderr = exited, stdout, stderr


class _Conn:
    """Fabric's Connection as Node.run uses it: the wrapped command line in, an answer out."""

    def __init__(self, answers: dict[str, _Answer]) -> None:
        self.answers, self.asked = answers, []

    def run(self, line: str, **_kw) -> _Answer:
        self.asked.append(line)
        return next(a for key, a in self.answers.items() if key in line)


def test_node_run_names_the_path_sudo_gave_when_a_command_did_not_run():
    node = remote.Node(remote.SshTarget("node1", "127.0.0.1", 2222, "vagrant", "/nonexistent"), "192.168.223.131")
    node.conn = _Conn({"calicoctl": _Answer(127, "", "sh: calicoctl: command not found\n"),
                       "echo": _Answer(0, CENTOS7_SECURE_PATH + "\n"),
                       "systemctl": _Answer(3, "failed\n")})
    assert node.run("systemctl is-active calico-node").path == ""  # it ran: no extra command
    assert len(node.conn.asked) == 1
    res = node.run("calicoctl node status")
    assert node.conn.asked[1] == "sudo -n sh -c 'calicoctl node status'"
    assert res.path == CENTOS7_SECURE_PATH and f"PATH in effect: {CENTOS7_SECURE_PATH}" in res.describe()
    node.run("calicoctl get node")
    assert sum("echo" in line for line in node.conn.asked) == 1  # asked once per node

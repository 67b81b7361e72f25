"""The e2e checks never read a command that did not run as the component's answer: the node
fixture's guard fails the check with the command and PATH first (issue 22, defect 12)."""

import pytest

from calicolab.core.remote import CommandResult
from e2e import expect
from e2e.conftest import guard_missing_commands


class ScriptedNode:
    name = "node1"

    def __init__(self, rc: int, stderr: str = "", stdout: str = "") -> None:
        self.answer = (rc, stdout, stderr)

    def run(self, cmd: str, **_kwargs) -> CommandResult:
        rc, out, err = self.answer
        return CommandResult(self.name, cmd, rc, out, err, path="/sbin:/bin:/usr/sbin:/usr/bin")


def test_a_missing_command_fails_the_check_naming_it_and_the_path():
    # As CentOS 7's sudo answers `systemctl is-active etcd` when systemctl is not on secure_path:
    # the shell's 127, and nothing on stdout that a check could read as "inactive".
    node = ScriptedNode(127, "sh: systemctl: command not found\n")
    guard_missing_commands(node)
    with pytest.raises(expect.CheckFailed) as err:
        node.run("systemctl is-active etcd")
    text = str(err.value)
    assert "missing or cannot run" in text and "systemctl" in text
    assert "/sbin:/bin:/usr/sbin:/usr/bin" in text


def test_a_command_that_cannot_execute_fails_too():
    node = ScriptedNode(126, "sh: /usr/local/bin/calicoctl: Permission denied\n")
    guard_missing_commands(node)
    with pytest.raises(expect.CheckFailed):
        node.run("/usr/local/bin/calicoctl node status")


@pytest.mark.parametrize("rc,stderr,cmd", [
    (3, "", "systemctl is-active etcd"),                     # inactive: the component's answer
    (1, "cat: /etc/x: No such file or directory\n", "cat /etc/x"),  # the program ran and answered
    (126, "OCI runtime exec failed: container is stopping\n", "docker exec w1 ip addr"),
])
def test_answers_pass_through_to_the_check(rc, stderr, cmd):
    node = ScriptedNode(rc, stderr)
    guard_missing_commands(node)
    assert node.run(cmd).rc == rc

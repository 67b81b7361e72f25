"""Assertion helpers for the e2e tests: expected vs seen and the likely cause, no wall of
traceback (pytest hides these frames)."""

from __future__ import annotations

from typing import Any

from calicolab.core.node_commands import CENTOS7_SECURE_PATH
from calicolab.core.remote import CommandResult


class CheckFailed(AssertionError):
    pass


def fail(what: str, expected: Any, seen: Any, cause: str = "") -> None:
    __tracebackhide__ = True
    lines = [what, f"  expected: {expected}", f"  seen:     {seen}"]
    if cause:
        lines.append(f"  likely cause: {cause}")
    raise CheckFailed("\n".join(lines))


def equal(what: str, seen: Any, expected: Any, cause: str = "") -> None:
    __tracebackhide__ = True
    if seen != expected:
        fail(what, expected, seen, cause)


def true(what: str, condition: bool, expected: Any, seen: Any, cause: str = "") -> None:
    __tracebackhide__ = True
    if not condition:
        fail(what, expected, seen, cause)


def ran(result: CommandResult) -> CommandResult:
    """The result of a node command that ran at all; a command that is missing or cannot run
    (exit 127, 126, sudo refused) fails here with the command, node, PATH and what to do, and
    never reaches a check that would read its silence as the component being down."""
    __tracebackhide__ = True
    missing = result.cannot_run
    if missing:
        fail(f"`{result.cmd}` on {result.node}: the command is missing or cannot run",
             "the command runs (whatever it then answers)",
             f"{missing.command}: {missing.why}, exit {result.rc}; PATH in effect: "
             f"{result.path or 'sudo secure_path (CentOS 7: ' + CENTOS7_SECURE_PATH + ')'}",
             f"not the component: install {missing.command} on {result.node} or call it by its absolute path "
             f"(calicolab/core/node_commands.py); `sudo -n sh -c 'command -v {missing.command}; echo $PATH'` "
             "on the node shows what sudo finds")
    return result


def command_ok(result: CommandResult, cause: str = "") -> None:
    """A node command must succeed (result is a calicolab.remote.CommandResult); `cause` is the
    component's likely cause, given only when the command ran and answered non-zero."""
    __tracebackhide__ = True
    ran(result)
    if not result.ok:
        fail(f"`{result.cmd}` on {result.node}", "exit 0",
             f"exit {result.rc}: {(result.stderr or result.stdout).strip()[-300:]}", cause)

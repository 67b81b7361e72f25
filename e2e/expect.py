"""Assertion helpers for the e2e tests: expected vs seen and the likely cause, no wall of
traceback (pytest hides these frames)."""

from __future__ import annotations

from typing import Any


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


def command_ok(result, cause: str = "") -> None:
    """A node command must succeed (result is a calicolab.remote.CommandResult)."""
    __tracebackhide__ = True
    if not result.ok:
        fail(f"`{result.cmd}` on {result.node}", "exit 0",
             f"exit {result.rc}: {(result.stderr or result.stdout).strip()[-300:]}", cause)

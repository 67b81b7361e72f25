"""The one stand-in for calicolab.core.remote.Node in the project's own tests: files in a dict,
commands answered only by the rules a test gives it.

Strict on purpose: a command no rule matches raises UnexpectedCommand (and is recorded), so a
check that runs the wrong command cannot pass its healthy baseline on a silent "exit 0, no
output". tests/conftest.py fails a test whose FakeNodes saw such a command even when the code
under test swallowed the exception (artifact collection catches everything, for instance).
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Callable, Generator, Iterable, Mapping

import pytest

from calicolab.core.remote import CommandResult, RemoteCommandFailed, SshTarget

# One module under both names it is imported by (`fakes` with tests/ on sys.path, `tests.fakes`
# from the repository root): two copies would keep two registries, and the check in
# tests/conftest.py would look at one only.
sys.modules.setdefault("fakes", sys.modules[__name__])
sys.modules.setdefault("tests.fakes", sys.modules[__name__])

Reply = tuple[int, str]
# A rule's answer: a callable given the command (for answers that depend on it or on state),
# or, for convenience, a fixed (rc, stdout) or a stdout string (rc 0).
Answer = Callable[[str], Reply] | Reply | str
Rules = Mapping[str, Answer] | Iterable[tuple[str, Answer]]

_STAT_MODE = re.compile(r"^stat -c %a (\S+)$")  # provision.steps' mode query

_CREATED: list[FakeNode] = []  # every FakeNode since the registry was last forgotten


class UnexpectedCommand(AssertionError):
    """A FakeNode was asked something no rule of the test answers."""

    def __init__(self, node: str, cmd: str, patterns: list[str]) -> None:
        listed = "\n".join(f"    {p!r}" for p in patterns) or "    (none)"
        super().__init__(f"FakeNode {node} has no rule for the command\n    {cmd!r}\nits rules are:\n{listed}\n"
                         "give the test a rule with the answer a live node would give")
        self.node, self.cmd, self.patterns = node, cmd, patterns


def _reply(answer: Answer, cmd: str) -> Reply:
    if isinstance(answer, str):
        return 0, answer
    if isinstance(answer, tuple):
        return answer
    return answer(cmd)


class FakeNode:
    """Records every run/put/read in `log`; answers a command from the first rule (a regex,
    searched in the command) that matches, else from its file emulation (put, read,
    put_private, `stat -c %a`), else raises UnexpectedCommand."""

    def __init__(self, name: str = "node1", ip: str = "192.168.223.131", rules: Rules | None = None,
                 target: SshTarget | None = None) -> None:
        self.name, self.ip = name, ip
        self.target = target or SshTarget(name, "127.0.0.1", 22, "vagrant", "/dev/null")
        self.rules: dict[str, Answer] = dict(rules or {})
        self.files: dict[str, str] = {}
        self.modes: dict[str, str] = {}  # octal without leading zeros, as `stat -c %a` prints
        self.owners: dict[str, str] = {}
        self.log: list[tuple[str, str]] = []  # ("run", cmd) | ("put", path) | ("put_private", path) | ("read", path)
        self.unexpected: list[str] = []  # commands no rule answered (kept even when the raise is swallowed)
        self.closed = False
        _CREATED.append(self)

    def __repr__(self) -> str:
        return f"FakeNode({self.name})"

    @property
    def commands(self) -> list[str]:
        """The commands run, in order (puts and reads are in `log` and `puts`)."""
        return [what for kind, what in self.log if kind == "run"]

    @property
    def puts(self) -> list[str]:
        """The paths written, by put or put_private, in order."""
        return [what for kind, what in self.log if kind in ("put", "put_private")]

    def prefer(self, pattern: str, answer: Answer) -> None:
        """A rule tried before all others: a test's symptom over a fixture's defaults."""
        self.rules = {pattern: answer, **{p: a for p, a in self.rules.items() if p != pattern}}

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120) -> CommandResult:  # noqa: ARG002
        self.log.append(("run", cmd))
        rc, out = self._answer(cmd)
        result = CommandResult(self.name, cmd, rc, out, "")
        if check and not result.ok:  # as calicolab.core.remote.Node does
            raise RemoteCommandFailed(result)
        return result

    def _answer(self, cmd: str) -> Reply:
        for pattern, answer in self.rules.items():
            if re.search(pattern, cmd):
                return _reply(answer, cmd)
        stat = _STAT_MODE.match(cmd)
        if stat:
            path = shlex.split(stat.group(1))[0]
            return (0, self.modes.get(path, "644") + "\n") if path in self.files else (1, "")
        self.unexpected.append(cmd)
        raise UnexpectedCommand(self.name, cmd, list(self.rules))

    def put(self, content: str, path: str, mode: str = "0644") -> None:
        self.log.append(("put", path))
        self.files[path] = content
        self.modes[path] = mode.lstrip("0") or "0"

    def put_private(self, content: str, path: str, owner: str = "root") -> None:
        self.log.append(("put_private", path))
        self.files[path], self.modes[path], self.owners[path] = content, "600", owner

    def read(self, path: str) -> str | None:
        self.log.append(("read", path))
        return self.files.get(path)

    def close(self) -> None:
        self.closed = True

    def assert_no_surprises(self) -> None:
        if self.unexpected:
            shown = "\n".join(f"    {c!r}" for c in self.unexpected)
            raise AssertionError(f"FakeNode {self.name} was asked command(s) no rule answers (the code under "
                                 f"test may have swallowed the UnexpectedCommand):\n{shown}\n"
                                 f"its rules are: {list(self.rules)}")


def forget_nodes() -> None:
    """Start a test with an empty registry."""
    _CREATED.clear()


def assert_no_surprises() -> None:
    """Fail when any FakeNode created since forget_nodes() saw an unexpected command."""
    nodes = list(_CREATED)
    _CREATED.clear()
    for node in nodes:
        node.assert_no_surprises()


# -- the hooks tests/conftest.py registers (here, so tests/unit/test_fakes.py can load the very
# same ones into a pytest run of its own with `-p fakes`) ---------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:  # noqa: ARG001
    forget_nodes()  # before the fixtures run: a FakeNode a fixture makes belongs to this test
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:  # noqa: ARG001
    # A test that failed keeps its own error (`yield` re-raises it, once); one that passed although
    # a FakeNode raised UnexpectedCommand (the code under test swallowed it) fails here, as itself.
    result = yield
    assert_no_surprises()
    return result

"""Shared helpers for the VM-path tests: the repository on sys.path and a recording node."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from calicolab.core.remote import CommandResult  # noqa: E402


@dataclass
class FakeNode:
    """Stands in for calicolab.remote.Node: records every run/put, answers from rules.

    rules: (substring, rc, stdout) tried in order against each command; default rc 0, "".
    files: the node's files as far as read/put are concerned.
    """

    name: str = "node1"
    ip: str = "192.168.223.131"
    rules: list[tuple[str, int, str]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    log: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120) -> CommandResult:  # noqa: ARG002
        self.log.append(("run", cmd))
        for needle, rc, out in self.rules:
            if needle in cmd:
                return CommandResult(self.name, cmd, rc, out, "" if rc == 0 else f"{needle} failed")
        if cmd.startswith("stat -c %a "):
            return CommandResult(self.name, cmd, 0, "644\n", "")
        return CommandResult(self.name, cmd, 0, "", "")

    def put(self, content: str, path: str, mode: str = "0644") -> None:  # noqa: ARG002
        self.log.append(("put", path))
        self.files[path] = content

    def read(self, path: str) -> str | None:
        self.log.append(("read", path))
        return self.files.get(path)

    @property
    def commands(self) -> list[str]:
        return [entry[1] for entry in self.log if entry[0] == "run"]


@pytest.fixture
def fake_node() -> FakeNode:
    return FakeNode()

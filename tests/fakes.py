"""A recording stand-in for calicolab.remote.Node: files in a dict, commands answered by rules."""

from __future__ import annotations

import re
from collections.abc import Callable

from calicolab.core.remote import CommandResult


class FakeNode:
    def __init__(self, name: str = "node1", ip: str = "192.168.223.131",
                 rules: dict[str, Callable[[str], tuple[int, str]]] | None = None) -> None:
        self.name, self.ip = name, ip
        self.files: dict[str, str] = {}
        self.modes: dict[str, str] = {}
        self.commands: list[str] = []
        self.rules = rules or {}

    def run(self, cmd: str, *, check: bool = False, timeout: float = 0) -> CommandResult:  # noqa: ARG002
        self.commands.append(cmd)
        m = re.match(r"stat -c %a '?([^']+)'?$", cmd)
        if m:
            path = m.group(1)
            return CommandResult(self.name, cmd, 0 if path in self.files else 1,
                                 self.modes.get(path, "644") + "\n", "")
        for pattern, answer in self.rules.items():
            if re.search(pattern, cmd):
                rc, out = answer(cmd)
                return CommandResult(self.name, cmd, rc, out, "")
        return CommandResult(self.name, cmd, 0, "", "")

    def put(self, content: str, path: str, mode: str = "0644") -> None:
        self.commands.append(f"put {path}")
        self.files[path] = content
        self.modes[path] = mode.lstrip("0")

    def read(self, path: str) -> str | None:
        return self.files.get(path)

    def close(self) -> None:
        pass

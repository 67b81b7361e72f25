"""Building blocks of idempotent provisioning: every step says whether it changed anything."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from calicolab.core.remote import Node


@dataclass(frozen=True)
class Change:
    node: str
    section: str
    step: str
    changed: bool
    detail: str = ""
    seconds: float | None = None  # how long the step took (set by provision/run.py)

    def line(self) -> str:
        mark = "changed  " if self.changed else "unchanged"
        return f"  {self.node:<6} {'[' + self.section + ']':<13} {self.step:<33} {mark} {self.detail}".rstrip()


def ensure_file(node: Node, path: str, content: str, mode: str = "0644") -> bool:
    """Write path only when its content differs; True when it was written."""
    if node.read(path) == content:
        current_mode = node.run(f"stat -c %a {shlex.quote(path)}").stdout.strip()
        if current_mode == mode.lstrip("0"):
            return False
        node.run(f"chmod {mode} {shlex.quote(path)}", check=True)
        return True
    node.put(content, path, mode)
    return True


def ensure_absent(node: Node, path: str) -> bool:
    """Remove the file at path if it exists; True when it did."""
    if node.read(path) is None:
        return False
    node.run(f"rm -f {shlex.quote(path)}", check=True)
    return True


def ensure_lines(node: Node, path: str, lines: list[str]) -> bool:
    """Append the lines that are missing from path (keeping everything else)."""
    current = node.read(path) or ""
    present = {line.strip() for line in current.splitlines()}
    missing = [line for line in lines if line.strip() not in present]
    if not missing:
        return False
    text = current if current.endswith("\n") or not current else current + "\n"
    node.put(text + "".join(f"{line}\n" for line in missing), path, _mode(node, path))
    return True


def _mode(node: Node, path: str) -> str:
    res = node.run(f"stat -c %a {shlex.quote(path)}")
    return res.stdout.strip() if res.ok else "0644"


def unit_active(node: Node, unit: str) -> bool:
    return node.run(f"systemctl is-active --quiet {unit}").ok


def unit_enabled(node: Node, unit: str) -> bool:
    return node.run(f"systemctl is-enabled --quiet {unit}").ok

"""Local commands (docker, packer, debootstrap) with captured output and clear failures."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from calicolab.core.errors import UserError


@dataclass(frozen=True)
class Outcome:
    cmd: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def alive(pid: int) -> bool:
    """A local process runs and is not a zombie: daemons the tasks start outlive the task, so
    nobody here reaps them, and a zombie's pid still answers kill(pid, 0)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise UserError(f"{tool} is not installed: {hint}")
    return path


def which_or_none(tool: str) -> str | None:
    return shutil.which(tool)


def run(cmd: Sequence[str], *, check: bool = True, timeout: float = 600, input: str | None = None,
        env: dict[str, str] | None = None, cwd: str | None = None) -> Outcome:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                              input=input, env=env, cwd=cwd)
    except FileNotFoundError:
        raise UserError(f"{cmd[0]} is not installed: run `invoke setup`") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"`{' '.join(cmd)}` did not finish within {timeout:.0f} s") from None
    out = Outcome(tuple(cmd), proc.returncode, proc.stdout, proc.stderr)
    if check and not out.ok:
        last = (out.stderr.strip() or out.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise UserError(f"`{' '.join(cmd[:4])}...` failed (exit {out.rc}): {last[0]}")
    return out


def run_logged(cmd: Sequence[str], log_path: str, *, timeout: float = 1800,
               env: dict[str, str] | None = None, cwd: str | None = None) -> None:
    """Run a long command with its output in a log file; on failure show the log's tail."""
    with open(log_path, "w") as log:
        try:
            rc = subprocess.run(list(cmd), stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                                env=env, cwd=cwd).returncode
        except FileNotFoundError:
            raise UserError(f"{cmd[0]} is not installed: run `invoke setup`") from None
        except subprocess.TimeoutExpired:
            raise UserError(f"`{cmd[0]}` did not finish within {timeout:.0f} s; see {log_path}") from None
    if rc != 0:
        with open(log_path) as log:
            tail = [line.strip() for line in log.readlines() if line.strip()][-1:] or ["no output"]
        raise UserError(f"`{' '.join(cmd[:3])}` failed (exit {rc}): {tail[0]} (full log: {log_path})")

"""Commands on the nodes over SSH (Fabric), with results as plain objects."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import re
import shlex
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

import paramiko
from fabric import Config, Connection
from fabric.runners import Remote
from invoke.exceptions import CommandTimedOut

from calicolab.core.deadlines import deadline_factor
from calicolab.core.errors import UserError
from calicolab.core.node_commands import CENTOS7_SECURE_PATH

T = TypeVar("T")
# paramiko's transport thread logs a traceback on stderr when a node does not answer; Node.run
# already turns that into the one-line UserError (a bare traceback would break that rule).
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class SshTarget:
    name: str
    host: str
    port: int
    user: str
    key_file: str


# POSIX sh (XCU 2.8.2, "Exit Status for Commands"): a command not found exits 127, one found but
# not executable 126. The shell names the command on stderr: dash `sh: 1: calicoctl: not found`,
# bash as sh (CentOS 7) `sh: calicoctl: command not found` or `sh: line 1: /x: Permission denied`.
# A program's own message about a file (`cat: /x: No such file or directory`) starts with its
# name, not the shell's, so it does not match.
NOT_FOUND, NOT_EXECUTABLE = 127, 126
_SHELL_CANNOT_RUN = re.compile(
    r"^(?:\S*/)?(?:sh|bash|dash)(?:: line \d+)?: (?:\d+: )?(?P<command>\S+): "
    r"(?P<why>not found|command not found|No such file or directory|Permission denied)\s*$", re.M)
# sudo's own refusals exit 1 with `sudo: ...` (e.g. `sudo: a password is required` under -n,
# `sudo: sorry, you must have a tty to run sudo` with requiretty): nothing ran at all.
# Shell builtins that ask whether a program exists: their 127 is "no", said about their argument.
LOOKUPS = frozenset({"command", "type"})
_SUDO_REFUSED = re.compile(r"^sudo: (?P<why>.+)$", re.M)
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# A word in command position: at the start, or after ; & | ( or $( , past VAR=value assignments.
_COMMAND_WORD = re.compile(r"(?:^|[;&|(]|\$\()\s*(?:[A-Za-z_]\w*=\S*\s+)*([^\s;&|()<>]+)")


@dataclass(frozen=True)
class CannotRun:
    """Why a command did not run at all: what was missing or refused, not the component's answer."""
    command: str  # the program the shell or sudo could not start
    why: str      # not found | not executable (permission denied) | sudo refused: ...


@dataclass(frozen=True)
class CommandResult:
    node: str
    cmd: str
    rc: int
    stdout: str
    stderr: str
    path: str = ""  # the PATH the command ran with, looked up only when it could not run

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def cannot_run(self) -> CannotRun | None:
        """The command is missing or cannot run (None: it ran, whatever it answered)."""
        if self.rc == 0:
            return None
        # The shell's line counts for a program of this command line (a pipeline's first command
        # may be missing while the last one sets rc); bash's `sh: /x: No such file or directory`
        # for a redirection's file names no program and does not count.
        programs = set(_COMMAND_WORD.findall(self.cmd))
        for shell in _SHELL_CANNOT_RUN.finditer(self.stderr):
            if self.rc in (NOT_FOUND, NOT_EXECUTABLE) or shell.group("command") in programs:
                why = "permission denied" if shell.group("why") == "Permission denied" else "not found"
                return CannotRun(shell.group("command"), why)
        if self.rc == NOT_FOUND and self.program in LOOKUPS:
            return None  # dash's `command -v X` exits 127, silently, when X is absent: an answer
        if self.rc == NOT_FOUND:
            return CannotRun(self.program, "not found")
        if self.rc == NOT_EXECUTABLE:
            return CannotRun(self.program, "not executable (permission denied)")
        sudo = _SUDO_REFUSED.search(self.stderr)
        if self.rc == 1 and sudo and not self.stdout.strip():
            return CannotRun("sudo", f"sudo refused: {sudo.group('why').strip()}")
        return None

    @property
    def program(self) -> str:
        """The first program of the command line (after VAR=value assignments)."""
        for word in self.cmd.split():
            if not _ENV_ASSIGNMENT.match(word):
                return word
        return self.cmd

    def missing_text(self) -> str:
        """What a check says instead of a component verdict when the command did not run."""
        missing = self.cannot_run
        if missing is None:
            return ""
        path = self.path or f"sudo's secure_path (unknown here; CentOS 7: {CENTOS7_SECURE_PATH})"
        return (f"`{self.cmd}` on {self.node}: the command is missing or cannot run ({missing.command}: "
                f"{missing.why}, exit {self.rc}); PATH in effect: {path}. This says nothing about the "
                f"component it asks: install {missing.command} on {self.node} or call it by its absolute path "
                f"(calicolab/core/node_commands.py); `sudo -n sh -c 'command -v {missing.command}; echo $PATH'` "
                "on the node shows what sudo finds")

    def describe(self) -> str:
        if self.cannot_run:
            return self.missing_text()
        text = (self.stdout + self.stderr).strip()
        return f"`{self.cmd}` on {self.node} exited {self.rc}" + (f": {text[-400:]}" if text else "")

    def ran(self) -> CommandResult:
        """This result, when the command ran at all; CommandUnavailable otherwise. Checks call it
        before reading an answer, so a missing command is never read as a component that is down."""
        if self.cannot_run:
            raise CommandUnavailable(self)
        return self


class RemoteCommandFailed(Exception):
    def __init__(self, result: CommandResult) -> None:
        super().__init__(result.describe())
        self.result = result


class CommandUnavailable(Exception):
    """A node command is missing or cannot run (127, 126, sudo refused). Not a RemoteCommandFailed:
    polling retries those as "not yet", while a missing command will not appear by waiting."""

    def __init__(self, result: CommandResult) -> None:
        super().__init__(result.missing_text())
        self.result = result


class _QuietRemote(Remote):
    """Fabric's runner, except that a command timeout on a connection that has died meanwhile
    stays quiet: the timer thread's channel.close() would raise EOFError and print a traceback,
    while the caller already gets a timed-out result."""

    def kill(self) -> None:
        with contextlib.suppress(EOFError, OSError, paramiko.SSHException):
            super().kill()


class Node:
    """One node: its name, its guide IP and a persistent SSH connection (root via sudo)."""

    def __init__(self, target: SshTarget, ip: str, connect_timeout: float = 15) -> None:
        self.name, self.ip, self.target = target.name, ip, target
        self._path: str | None = None  # sudo's PATH on this node, once a command could not run
        self.conn = Connection(
            target.host, user=target.user, port=target.port, connect_timeout=connect_timeout,
            config=Config(overrides={"load_ssh_configs": False, "runners": {"remote": _QuietRemote}}),
            # banner and auth waits bounded too: a paused node accepts TCP but never answers
            connect_kwargs={"key_filename": target.key_file, "look_for_keys": False, "allow_agent": False,
                            "banner_timeout": connect_timeout, "auth_timeout": connect_timeout},
        )

    def __repr__(self) -> str:
        return f"Node({self.name})"

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120) -> CommandResult:
        """Run a shell command as root; check=True raises on a non-zero exit."""
        timeout *= deadline_factor()  # emulated VMs: every command takes longer
        wrapped = f"sudo -n sh -c {shlex.quote(cmd)}"
        try:
            res = self.conn.run(wrapped, hide=True, warn=True, timeout=timeout, in_stream=False)
            result = CommandResult(self.name, cmd, res.exited, res.stdout, res.stderr)
            if result.cannot_run:  # say which PATH sudo gave it (one more command, only then)
                result = replace(result, path=self._sudo_path(timeout))
        except CommandTimedOut:
            result = CommandResult(self.name, cmd, 124, "", f"timed out after {timeout:.0f} s")
        except (OSError, paramiko.SSHException, EOFError) as err:
            raise UserError(f"{self.name} ({self.target.host}:{self.target.port}) is unreachable "
                            f"over SSH ({err.__class__.__name__}: {err}): is the cluster up? "
                            "run `invoke up`") from None
        if check and not result.ok:
            raise RemoteCommandFailed(result)
        return result

    def _sudo_path(self, timeout: float) -> str:
        if self._path is None:
            self._path = ""  # best effort: the message falls back to naming sudo's secure_path
            with contextlib.suppress(CommandTimedOut, OSError, paramiko.SSHException, EOFError):
                res = self.conn.run("sudo -n sh -c 'echo \"$PATH\"'", hide=True, warn=True, timeout=timeout,
                                    in_stream=False)
                self._path = res.stdout.strip() if res.exited == 0 else ""
        return self._path

    def put(self, content: str, path: str, mode: str = "0644") -> None:
        """Write a file as root. In place, not by rename: Docker bind-mounts /etc/hosts and
        /etc/hostname into lab nodes, and a bind-mounted file cannot be replaced."""
        blob = base64.b64encode(content.encode()).decode()
        target = shlex.quote(path)
        self.run(f"mkdir -p $(dirname {target}) && echo {blob} | base64 -d > {target} && "
                 f"chmod {mode} {target}", check=True)

    def put_private(self, content: str, path: str, owner: str = "root") -> None:
        """Write a private key (mode 0600, owner) over SFTP: put() would carry the content on a
        command line, where sudo's log and a failure message would show it."""
        staging = self.conn.run("mktemp -d", hide=True, in_stream=False).stdout.strip()  # 0700, SSH user's
        try:
            self.conn.put(io.BytesIO(content.encode()), f"{staging}/file")
            self.run(f"install -D -m 0600 -o {shlex.quote(owner)} -g {shlex.quote(owner)} "
                     f"{staging}/file {shlex.quote(path)}", check=True)
        finally:
            self.conn.run(f"rm -rf {shlex.quote(staging)}", hide=True, warn=True, in_stream=False)

    def read(self, path: str) -> str | None:
        res = self.run(read_command(path))
        return res.stdout if res.ok else None

    def close(self) -> None:
        self.conn.close()


def read_command(path: str) -> str:
    """The command Node.read asks: a file's content (the read-only pass's snapshot asks it too)."""
    return f"cat {shlex.quote(path)}"


def in_parallel(nodes: Sequence[Node], fn: Callable[[Node], T], timeout: float = 600) -> dict[str, T]:
    """Run fn on every node at once (the guide's "start all members together")."""
    timeout *= deadline_factor()  # a whole section on emulated VMs (the double's `docker load`: minutes)
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        futures = {node.name: pool.submit(fn, node) for node in nodes}
        return {name: fut.result(timeout=timeout) for name, fut in futures.items()}

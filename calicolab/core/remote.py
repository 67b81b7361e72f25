"""Commands on the nodes over SSH (Fabric), with results as plain objects."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import shlex
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import paramiko
from fabric import Config, Connection
from fabric.runners import Remote
from invoke.exceptions import CommandTimedOut

from calicolab.core.deadlines import deadline_factor
from calicolab.core.errors import UserError

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


@dataclass(frozen=True)
class CommandResult:
    node: str
    cmd: str
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def describe(self) -> str:
        text = (self.stdout + self.stderr).strip()
        return f"`{self.cmd}` on {self.node} exited {self.rc}" + (f": {text[-400:]}" if text else "")


class RemoteCommandFailed(Exception):
    def __init__(self, result: CommandResult) -> None:
        super().__init__(result.describe())
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
        timeout *= deadline_factor()  # emulated VMs: every command takes longer
        """Run a shell command as root; check=True raises on a non-zero exit."""
        wrapped = f"sudo -n sh -c {shlex.quote(cmd)}"
        try:
            res = self.conn.run(wrapped, hide=True, warn=True, timeout=timeout, in_stream=False)
            result = CommandResult(self.name, cmd, res.exited, res.stdout, res.stderr)
        except CommandTimedOut:
            result = CommandResult(self.name, cmd, 124, "", f"timed out after {timeout:.0f} s")
        except (OSError, paramiko.SSHException, EOFError) as err:
            raise UserError(f"{self.name} ({self.target.host}:{self.target.port}) is unreachable "
                            f"over SSH ({err.__class__.__name__}: {err}): is the cluster up? "
                            "run `invoke up`") from None
        if check and not result.ok:
            raise RemoteCommandFailed(result)
        return result

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
        res = self.run(f"cat {shlex.quote(path)}")
        return res.stdout if res.ok else None

    def close(self) -> None:
        self.conn.close()


def in_parallel(nodes: Sequence[Node], fn: Callable[[Node], T], timeout: float = 600) -> dict[str, T]:
    """Run fn on every node at once (the guide's "start all members together")."""
    timeout *= deadline_factor()  # a whole section on emulated VMs (a 255 MB `docker load`: minutes)
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        futures = {node.name: pool.submit(fn, node) for node in nodes}
        return {name: fut.result(timeout=timeout) for name, fut in futures.items()}

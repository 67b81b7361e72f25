"""Supervision shaped like calico/node 2.6's runit (`runsvdir -P /etc/service/enabled`).

Each service is its own process, restarted on its own when it exits (runsv), with its
output appended to `/var/log/calico/<service>/current` (svlogd; BIRD's lines prefixed
with a timestamp as `svlogd -tt` does). On SIGTERM, `runsvdir -P` exits at once and the
container's PID namespace goes with it: every service dies by SIGKILL. So BIRD sends no
BGP Cease (the peer keeps the routes by graceful restart), felix leaves its rules and the
plugin leaves its sockets behind, as they do under real calico/node.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def set_process_name(name: str) -> None:
    """Give a service calico/node's process name (`comm`, 15 characters at most): calicoctl
    v1.6.1 decides "running" by a process named `calico-felix`, operators grep for the rest."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(15, ctypes.c_char_p(name[:15].encode()), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


# runsv waits a second before restarting a service that exited (runit's sv docs).
RESTART_DELAY = 1.0


@dataclass(frozen=True)
class Service:
    name: str  # also the log folder: /var/log/calico/<name>
    argv: tuple[str, ...]
    timestamps: bool = False  # bird, bird6: `svlogd -tt`; felix, confd, libnetwork: `svlogd`
    env: Mapping[str, str] | None = None


def svlogd_stamp(now: dt.datetime | None = None) -> str:
    """`svlogd -tt`'s prefix: UTC, `YYYY-MM-DD_HH:MM:SS.xxxxx`."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%d_%H:%M:%S.") + f"{now.microsecond // 10:05d}"


@dataclass
class Runner:
    """One runsv: keeps one service running and its log written."""

    service: Service
    log_root: Path
    stopping: threading.Event
    starts: int = 0
    proc: subprocess.Popen | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def log_file(self) -> Path:
        return self.log_root / self.service.name / "current"

    def _write(self, line: str) -> None:
        prefix = svlogd_stamp() + " " if self.service.timestamps else ""
        try:
            with self.log_file().open("a") as out:
                out.write(prefix + line.rstrip("\n") + "\n")
        except OSError:
            pass  # a full or missing log volume must not stop the service

    def run(self) -> None:
        with contextlib.suppress(OSError):
            self.log_file().parent.mkdir(parents=True, exist_ok=True)
        while not self.stopping.is_set():
            began = time.monotonic()
            env = dict(os.environ, **(self.service.env or {}))
            with self._lock:
                if self.stopping.is_set():
                    return
                try:
                    self.proc = subprocess.Popen(self.service.argv, stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT, text=True, env=env,
                                                 errors="replace")
                except OSError as exc:
                    self.proc = None
                    self._write(f"runsv: cannot start {self.service.argv[0]}: {exc}")
                self.starts += 1
            proc = self.proc
            if proc is not None:
                assert proc.stdout is not None
                for line in proc.stdout:
                    self._write(line)
                proc.wait()
            if time.monotonic() - began < RESTART_DELAY:
                self.stopping.wait(RESTART_DELAY)

    def kill(self) -> None:
        with self._lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()


class Supervisor:
    """runsvdir: start every service, restart each on its own, SIGKILL all on TERM."""

    def __init__(self, services: Sequence[Service], log_root: Path,
                 on_signal: Callable[[int], None] | None = None) -> None:
        self.stopping = threading.Event()
        self.runners = [Runner(s, log_root, self.stopping) for s in services]
        self.threads: list[threading.Thread] = []
        self.on_signal = on_signal

    def start(self) -> None:
        for runner in self.runners:
            thread = threading.Thread(target=runner.run, name=f"runsv-{runner.service.name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for runner in self.runners:
            runner.kill()

    def runner(self, name: str) -> Runner:
        return next(r for r in self.runners if r.service.name == name)

    def run(self) -> int:
        """Block until SIGTERM/SIGINT/SIGHUP; then kill every service and return 0 as runsvdir does."""
        def handle(signum: int, _frame: object) -> None:
            if self.on_signal:
                self.on_signal(signum)
            self.stopping.set()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, handle)
        self.start()
        self.stopping.wait()
        self.stop()
        return 0

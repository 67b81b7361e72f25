"""A job run beside the caller's own steps, its output in a log file; by default at a lower CPU priority.

`invoke test` runs the VM lane this way: the lab steps leave about one of two cores idle on
average (waiting on SSH, etcd elections, BGP timers), and the emulated VMs take that idle time
instead of adding their own minutes after the lab's. `nice` keeps the lab's timing-sensitive
checks first in line for the CPU; the VMs' deadlines are scaled for emulation anyway.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

NICENESS = 10          # CFS weight 110 against the lab's 1024: the VMs get what the lab leaves
STOP_GRACE_S = 300     # a matrix tears its lanes down on SIGTERM: vagrant destroy takes a while


@dataclass
class Beside:
    name: str
    argv: list[str]
    log: Path
    niceness: int = NICENESS
    summary_lines: int = 30  # the log's last lines shown when it ends: its summary
    proc: subprocess.Popen | None = None
    started: float = 0.0
    ended: float | None = field(default=None)

    def start(self, env: dict[str, str] | None = None) -> Beside:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as out:  # the child keeps its own descriptor
            # Niced before exec, so every process the job starts (vagrant, libvirtd, qemu) inherits it.
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                         preexec_fn=lambda: os.nice(self.niceness))
        self.started = time.monotonic()
        # Its end is taken when it exits, not when the caller gets round to asking: `invoke test`
        # asks after the lab steps, and a lane that ended minutes before read as that long.
        threading.Thread(target=self._note_exit, args=(self.proc,), daemon=True).start()
        return self

    def _note_exit(self, proc: subprocess.Popen) -> None:
        proc.wait()
        self.ended = time.monotonic()

    @property
    def elapsed(self) -> float:
        """Since it started, whether or not it has ended."""
        return time.monotonic() - self.started

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def wait(self, timeout: float) -> int | None:
        """The job's exit code, or None if it was still running at the deadline (then stopped)."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return None
        self.ended = self.ended or time.monotonic()
        return code

    def stop(self) -> int | None:
        """SIGTERM to the job alone (it cleans up after itself), SIGKILL to its group after the grace."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(timeout=30)
        self.ended = self.ended or time.monotonic()
        return code

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

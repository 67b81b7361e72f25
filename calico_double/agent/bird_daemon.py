"""Run BIRD as a supervised child and talk to it over its control socket.

calico/node runs BIRD under runit, which restarts it when it dies; the supervisor thread
here does the same. Config changes are applied with BIRD's `configure` command, which
keeps established sessions whose settings did not change.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
bird_log = logging.getLogger("bird")


class BirdError(RuntimeError):
    """BIRD's control socket is unreachable or answered with an error."""


@dataclass(frozen=True)
class BirdReply:
    code: int  # the last reply code (0000 ok, 0003 reconfigured, 8xxx/9xxx errors...)
    lines: list[str]


class BirdControl:
    """Client for BIRD's control protocol: 4-digit code, '-' for continued replies, ' ' for continuation lines."""

    def __init__(self, socket_path: Path, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def command(self, cmd: str) -> BirdReply:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.socket_path))
                stream = sock.makefile("rwb")
                hello = stream.readline().decode(errors="replace")
                if not hello.startswith("0001"):
                    raise BirdError(f"unexpected BIRD greeting {hello!r}")
                stream.write(cmd.encode() + b"\n")
                stream.flush()
                return read_reply(stream)
        except OSError as exc:
            raise BirdError(f"cannot reach BIRD at {self.socket_path}: {exc}") from exc

    def ready(self) -> bool:
        try:
            self.command("show status")
            return True
        except BirdError:
            return False

    def configure(self) -> BirdReply:
        reply = self.command("configure")
        if reply.code >= 8000:
            raise BirdError("BIRD rejected the new configuration: " + " ".join(reply.lines))
        return reply


def read_reply(stream) -> BirdReply:
    lines: list[str] = []
    code = 0
    while True:
        raw = stream.readline()
        if not raw:
            raise BirdError("BIRD closed the control connection mid-reply")
        line = raw.decode(errors="replace").rstrip("\n")
        if line.startswith(" "):
            lines.append(line[1:])
            continue
        if len(line) >= 5 and line[:4].isdigit():
            code = int(line[:4])
            lines.append(line[5:])
            if line[4] == " ":
                return BirdReply(code, lines)
        else:
            lines.append(line)


class BirdSupervisor(threading.Thread):
    """Keeps `bird` running in the foreground, restarting it when it exits."""

    def __init__(self, config_file: Path, socket_path: Path, restart_delay: float = 1.0,
                 binary: str = "bird") -> None:
        super().__init__(name="bird-supervisor", daemon=True)
        self.config_file = config_file
        self.socket_path = socket_path
        self.restart_delay = restart_delay
        self.binary = binary
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.starts = 0

    def argv(self) -> list[str]:
        return [self.binary, "-f", "-c", str(self.config_file), "-s", str(self.socket_path)]

    def run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    break
                log.info("Starting BIRD: %s", " ".join(self.argv()))
                try:
                    self._proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE,
                                                  stderr=subprocess.STDOUT, text=True)
                except OSError as exc:
                    log.error("Cannot start BIRD: %s", exc)
                    self._proc = None
                self.starts += 1
            proc = self._proc
            if proc is not None:
                assert proc.stdout is not None
                for line in proc.stdout:
                    bird_log.info("%s", line.rstrip())
                code = proc.wait()
                if not self._stop.is_set():
                    log.warning("BIRD exited with status %s; restarting in %.0fs", code, self.restart_delay)
            self._stop.wait(self.restart_delay)

    def wait_ready(self, control: BirdControl, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if control.ready():
                return True
            time.sleep(0.2)
        return False

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # `persist` keeps BIRD's routes in the kernel, as in Calico
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()

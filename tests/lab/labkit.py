"""Helpers for the lab tests: a lane (prefix, subnet, run and reports folders), the tasks run
in it, what it leaves behind, and polling with deadlines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from calicolab.core import shell
from calicolab.core.paths import ROOT

LANE_VARS = ("CALICOLAB_LAB_PREFIX", "CALICOLAB_LAB_SUBNET")


def lane_names(prefix: str, subnets: str) -> list[tuple[str, str]]:
    """One lane per subnet of a comma-separated list: the first keeps the prefix, the n-th is
    `<prefix>-n` (labels match names exactly, so no lane's destroy reaches another's nodes)."""
    listed = [s.strip() for s in subnets.split(",") if s.strip()]
    return [(prefix if i == 0 else f"{prefix}-{i + 1}", subnet) for i, subnet in enumerate(listed)]


@dataclass(frozen=True)
class Lane:
    prefix: str
    subnet: str
    run_dir: Path
    reports_dir: Path

    @property
    def network(self) -> str:
        return f"vagrant_network_{self.subnet}"

    @property
    def dotfile(self) -> Path:
        return self.run_dir / ".vagrant"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALICOLAB_")}
        env.update(CALICOLAB_PREFIX=self.prefix, CALICOLAB_SUBNET=self.subnet,
                   CALICOLAB_RUN_DIR=str(self.run_dir), CALICOLAB_REPORTS_DIR=str(self.reports_dir),
                   CALICOLAB_CALICO_SOURCE=os.environ.get("CALICOLAB_CALICO_SOURCE", "double"))
        env.update(extra)
        return env

    def invoke(self, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=self.env(**env),
                              capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """Start a task in its own process group, as a terminal would (Ctrl-C reaches the
        whole group: invoke, vagrant and ssh alike)."""
        with log.open("wb") as out:
            return subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=self.env(),
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def containers(self) -> list[str]:
        out = shell.run(["docker", "ps", "-a", "--filter", f"label=calicolab.prefix={self.prefix}",
                         "--format", "{{.Names}}"], check=False)
        return sorted(out.stdout.split())

    def network_exists(self) -> bool:
        return shell.run(["docker", "network", "inspect", self.network], check=False).ok

    def leftovers(self) -> dict[str, object]:
        """Everything a cluster of this lane can leave behind; empty when clean."""
        found: dict[str, object] = {}
        if self.containers():
            found["containers"] = self.containers()
        if self.network_exists():
            found["network"] = self.network
        if self.dotfile.exists():
            found["dotfile"] = str(self.dotfile)
        return found


def wait_until(what: str, check, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    """Poll check() with a deadline; stop early when the watched process has ended."""
    deadline = time.monotonic() + timeout
    interval = 0.2
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(interval)
        interval = min(interval * 1.5, 2.0)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    pytest.fail(f"{what}: not seen within {timeout:.0f} s\n{tail}", pytrace=False)


def interrupt(proc: subprocess.Popen, timeout: float = 240, sig: int = signal.SIGINT, group: bool = True) -> int:
    """Ctrl-C to the process group (or another signal, to the task's process alone), then wait
    for the task to finish its cleanup."""
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"the task did not finish within {timeout:.0f} s of signal {sig}", pytrace=False)

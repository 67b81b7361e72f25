"""The double's runit-shaped supervision and its start-up when etcd cannot be reached.

Expected behaviour from projectcalico/calico@v2.6.1:calico_node/filesystem: sbin/start_runit
(`Calico node failed to start` on stderr), startup/startup.go (`ERROR: ...`, `Terminating`,
exit 1), etc/service/available/*/run and log/run (one runsv per service, svlogd files,
`-tt` timestamps for bird and bird6), runsvdir -P exiting at once on TERM.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from calico_double.agent.config import Config
from calico_double.agent.main import services
from calico_double.agent.runsv import Service, Supervisor, svlogd_stamp

REPO = Path(__file__).resolve().parents[2]


def wait_until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {check.__doc__ or check}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of a supervisor thread may linger as a zombie until reaped.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def py(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def test_svlogd_tt_stamp_format() -> None:
    stamp = svlogd_stamp(dt.datetime(2017, 10, 5, 9, 8, 7, 123456, tzinfo=dt.UTC))
    assert stamp == "2017-10-05_09:08:07.12345"


def test_each_service_restarts_on_its_own_and_logs_to_current(tmp_path: Path) -> None:
    steady = Service("bird", py("import time; print('bird up', flush=True); time.sleep(60)"), timestamps=True)
    flaky = Service("felix", py("print('felix starting', flush=True); raise SystemExit(3)"))
    sup = Supervisor([steady, flaky], tmp_path)
    sup.start()
    try:
        felix_current = tmp_path / "felix" / "current"
        wait_until(lambda: felix_current.exists() and len(felix_current.read_text().splitlines()) >= 2)
        wait_until(lambda: (tmp_path / "bird" / "current").exists()
                   and "bird up" in (tmp_path / "bird" / "current").read_text())
        bird_pid = sup.runner("bird").proc.pid
        assert sup.runner("bird").starts == 1, "a felix restart must not restart BIRD"
        assert alive(bird_pid)
        felix_log = felix_current.read_text().splitlines()
        assert felix_log[:2] == ["felix starting", "felix starting"]  # svlogd without -tt: no prefix
        bird_line = (tmp_path / "bird" / "current").read_text().splitlines()[0]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d:\d\d:\d\d\.\d{5} bird up", bird_line), bird_line
    finally:
        sup.stop()


def test_stop_kills_services_even_when_they_ignore_term(tmp_path: Path) -> None:
    # runsvdir -P exits on TERM and the PID namespace takes every service down by SIGKILL:
    # BIRD has no chance to send a Cease, the plugin leaves its socket.
    stubborn = Service("bird", py("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                                  "print('up', flush=True); time.sleep(60)"))
    sup = Supervisor([stubborn], tmp_path)
    sup.start()
    runner = sup.runner("bird")
    wait_until(lambda: runner.proc is not None and (tmp_path / "bird" / "current").exists()
               and "up" in (tmp_path / "bird" / "current").read_text())
    pid = runner.proc.pid
    sup.stop()
    wait_until(lambda: runner.proc.poll() is not None or not alive(pid))
    assert runner.proc.returncode == -9, f"expected SIGKILL, got {runner.proc.returncode}"
    assert runner.starts == 1


def test_services_as_rc_local_enables_them() -> None:
    base = {"NODENAME": "node1", "ETCD_ENDPOINTS": "http://127.0.0.1:2379"}
    names = [s.name for s in services(Config.from_env({**base, "CALICO_LIBNETWORK_ENABLED": "true"}))]
    assert names == ["felix", "bird", "bird6", "confd", "libnetwork"]
    bird = next(s for s in services(Config.from_env(base)) if s.name == "bird")
    assert bird.argv == ("bird", "-R", "-s", "/var/run/calico/bird.ctl", "-d", "-c",
                         "/etc/calico/confd/config/bird.cfg")
    none = [s.name for s in services(Config.from_env({**base, "CALICO_NETWORKING_BACKEND": "none"}))]
    assert none == ["felix"]


def test_etcd_unreachable_fails_at_once_with_calicos_words(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "NODENAME": "node1",
           "IP": "192.168.223.131", "ETCD_ENDPOINTS": "http://127.0.0.1:9",  # discard port: refused
           "CALICO_DOUBLE_LOG_DIR": str(tmp_path / "log"), "CALICO_DOUBLE_RUN_DIR": str(tmp_path / "run"),
           "CALICO_DOUBLE_BIRD_DIR": str(tmp_path / "confd"), "CALICO_DOUBLE_PLUGIN_DIR": str(tmp_path / "p")}
    res = subprocess.run([sys.executable, "-m", "calico_double.agent"], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 1, res
    assert res.stdout.splitlines() == ["Skipping datastore connection test",
                                       "ERROR: Unable to access datastore to query node configuration",
                                       "Terminating"], res.stdout
    assert res.stderr.strip() == "Calico node failed to start"

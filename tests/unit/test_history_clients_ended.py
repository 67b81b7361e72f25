"""A history client that dies at start is named with its own error, not guessed at.

Seen on the Debian VM lane: both clients exited at once (`python: can't open file
.../etcd_client.py`), the history held only the final reads (10 per API), and the grading said
"the clients could not reach etcd's client URLs from the host"."""

from __future__ import annotations

import subprocess
import sys

from calicolab.etcd_history import recording


def _recording(tmp_path, scripts: dict[str, str]) -> recording.Recording:
    rec = object.__new__(recording.Recording)  # no etcd here: only the client processes matter
    rec.folder, rec.label, rec.procs = tmp_path, "calico-v2.6.1", {}
    for name, code in scripts.items():
        err = open(tmp_path / f"calico-v2.6.1-{name}.stderr", "w")  # noqa: SIM115
        rec.procs[name] = subprocess.Popen([sys.executable, "-c", code], stderr=err)
    return rec


def test_a_client_that_ended_is_named_with_its_exit_and_last_stderr_line(tmp_path):
    rec = _recording(tmp_path, {
        "node1": "import sys; sys.stderr.write(\"python: can't open file 'etcd_client.py'\\n\"); sys.exit(2)",
        "node2": "import time; time.sleep(30)",
    })
    rec.procs["node1"].wait()
    try:
        assert rec.ended_early() == ["node1: exit 2: python: can't open file 'etcd_client.py'"]
    finally:
        rec.procs["node2"].kill()
        rec.procs["node2"].wait()


def test_the_summary_prints_the_ended_clients():
    report = recording.HistoryReport(clients_ended=["node1: exit 2: boom"])
    assert "client ended early: node1: exit 2: boom" in recording.summary(report)
    assert report.to_json()["clients_ended"] == ["node1: exit 2: boom"]

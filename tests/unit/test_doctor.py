"""`invoke doctor`: the table, the JSON file, the exit codes, and no cluster -> one line, exit 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from fake_cluster import CFG, fake_view, said
from test_diagnoses import UnreachableNode

from calicolab.core import config, paths, state
from calicolab.core.errors import UserError
from calicolab.diagnose import doctor
from calicolab.diagnose.diagnoses import BGP_PORT_BLOCKED, FAIL, PASS, Finding

ROOT = paths.ROOT


def _cells(line: str) -> list[str]:
    return re.split(r" {2,}", line.strip())  # columns are two spaces apart; cells hold single spaces


def test_table_has_the_columns_and_cause_and_fix_only_for_problems():
    rows = [Finding("BGP mesh", "node1", PASS, "Established with 192.168.223.130"),
            Finding("BGP port 179", "node2", FAIL, "1 rule(s)", BGP_PORT_BLOCKED.at("node2")),
            Finding("MTU", "node1", PASS, "x" * 70)]
    text = doctor.table(rows).splitlines()
    assert _cells(text[0]) == ["check", "node", "result", "seen", "likely cause", "|", "fix"]
    assert set(text[1]) == {"-"}
    assert _cells(text[2]) == ["BGP mesh", "node1", "pass", "Established with 192.168.223.130"]  # no cause, no fix
    assert _cells(text[3]) == ["BGP port 179", "node2", "fail", "1 rule(s)",
                               f"node2: {BGP_PORT_BLOCKED.cause}", "|", BGP_PORT_BLOCKED.fix]
    assert _cells(text[4])[3] == "x" * 57 + "..."  # what was seen is cut at 60 characters
    assert all(line == line.rstrip() for line in text)


@pytest.fixture
def run_folder(tmp_path, monkeypatch):
    """A run folder holding a 'running' cluster whose nodes are fakes."""
    cfg = config.load({"run_dir": str(tmp_path / "run")}, environ={})
    config.write_effective(cfg)
    ssh = {n.name: {"name": n.name, "host": "127.0.0.1", "port": 2200 + i, "user": "vagrant", "key_file": "k"}
           for i, n in enumerate(cfg.nodes)}
    state.update(cfg, ssh=ssh, calico_source="double")
    nodes = {}
    monkeypatch.setattr(doctor, "cluster_nodes", lambda _cfg, _ssh, patience: nodes)
    return cfg, nodes


def test_healthy_cluster_report_and_json(run_folder, tmp_path):
    cfg, nodes = run_folder
    nodes.update(fake_view().nodes)
    lines: list[str] = []
    target = tmp_path / "out" / "doctor.json"
    report = doctor.run_doctor(cfg, str(target), say=lines.append)
    assert not report.failed and "0 failed" in lines[-2]
    data = json.loads(target.read_text())
    assert data["ok"] is True and data["calico"] == "double" and data["counts"]["fail"] == 0
    assert {f["check"] for f in data["findings"]} >= {"etcd cluster", "BGP mesh", "MTU"}


def test_a_symptom_fails_the_report_and_names_the_cause(run_folder):
    cfg, nodes = run_folder
    nodes.update(fake_view({"node2": {r"sysctl -n net.ipv4.ip_forward": said("0\n")}}).nodes)
    report = doctor.run_doctor(cfg, only=["IP forwarding"], say=lambda _m: None)
    assert [(f.node, f.diagnosis.name) for f in report.failed] == [("node2", "IP forwarding off")]
    assert report.to_json()["ok"] is False


def test_no_node_answering_means_no_cluster(run_folder):
    cfg, nodes = run_folder
    nodes.update({"node1": UnreachableNode(), "node2": UnreachableNode()})
    with pytest.raises(UserError, match="no cluster is up .*no node answers over SSH"):
        doctor.examine(cfg)


def test_no_run_state_means_no_cluster(tmp_path):
    cfg = config.load({"run_dir": str(tmp_path / "empty")}, environ={})
    with pytest.raises(UserError, match="no cluster is up in .*invoke up provision"):
        doctor.examine(cfg)


def _invoke(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_cli_without_a_cluster_is_one_line_and_exit_2(tmp_path):
    res = _invoke("doctor", "--run-dir", str(tmp_path / "none"))
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and "no cluster is up" in lines[0]
    assert "Traceback" not in res.stdout + res.stderr


def test_cli_help_names_the_options():
    text = _invoke("--help", "doctor").stdout
    assert "--json" in text and "--check" in text and "Diagnose the running cluster" in text


def test_fake_cluster_is_the_default_guide_cluster():
    # The fixtures above rely on cluster.yaml's two nodes.
    assert [n.name for n in CFG.nodes] == ["node1", "node2"]


def test_a_missing_calicoctl_is_reported_as_missing_not_as_calico_node_down(run_folder, tmp_path):
    # CentOS 7's sudo secure_path has no /usr/local/bin: calicoctl exits 127 (POSIX: not found)
    # while calico-node runs. The doctor must say the command is missing, not send the user to
    # calico-node's unit.
    cfg, nodes = run_folder
    nodes.update(fake_view({"node1": {r"calicoctl node status$": said("", 127)}}).nodes)
    lines: list[str] = []
    target = tmp_path / "doctor.json"
    report = doctor.run_doctor(cfg, str(target), only=["BGP mesh"], say=lines.append)
    assert [(f.check, f.node, f.diagnosis.name) for f in report.failed] == [("BGP mesh", "node1", "command missing")]
    text = "\n".join(lines)
    assert "missing or cannot run" in text and "calicoctl" in text
    assert "calico-node is not running" not in text and "Calico process is not running" not in text
    diag = next(f["diagnosis"] for f in json.loads(target.read_text())["findings"] if f["node"] == "node1")
    assert diag["name"] == "command missing" and "node_commands" in diag["fix"]

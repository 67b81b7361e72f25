"""Failure artifacts on the real lab, with a check made to fail on purpose: a kept cluster
(`--destroy never`), etcd stopped on node2, `invoke verify` failing; the nodes' files are in the
reports folder and linked from both JUnit files. Then the nodes stop answering (paused: TCP
accepted, no SSH banner; sshd stopped: refused): collection stays bounded and `invoke
provision` says so in one line. `invoke destroy` twice leaves nothing."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from calicolab.core import config, shell
from calicolab.report import artifacts

NODE_FILES = {"journal-etcd.txt", "journal-docker.txt", "journal-calico-node.txt", "etcd-member-list.txt",
              "etcd-health.txt", "etcd-status.txt", "calicoctl-node-status.txt", "bird-protocols.txt",
              "ip-addr.txt", "ip-route.txt", "iptables-save.txt", "docker-info.txt", "docker-ps.txt",
              "calico-node-logs.txt", "calico-service-logs.txt", "host-container-state.txt", "host-container-logs.txt"}


def _ok(res, code: int = 0) -> str:
    print(f"[{time.strftime('%H:%M:%S')}] invoke {' '.join(res.args[3:])}: exit {res.returncode}", flush=True)
    assert res.returncode == code, f"exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    assert "Traceback" not in res.stdout + res.stderr, res.stdout[-3000:] + res.stderr
    return res.stdout


def _attachments(text: str) -> list[Path]:
    return [Path(line[len("[[ATTACHMENT|"):-2]) for line in text.splitlines()
            if line.startswith("[[ATTACHMENT|") and line.endswith("]]")]


def test_a_failing_check_leaves_linked_artifacts_and_dead_nodes_do_not_hang(lane):
    # A cluster kept for inspection, and how to reach it.
    out = _ok(lane.invoke("e2e", "--destroy", "never", "--suite", "read-only", "--pytest-args", "-k test_security"))
    assert "destroy: skipped (--destroy never); reach the nodes with `invoke ssh node1`" in out
    assert lane.containers() == [f"{lane.prefix}-node1", f"{lane.prefix}-node2"]

    # Break etcd on node2, then the etcd health check fails from both nodes.
    _ok(lane.invoke("ssh", "node2", "--command", "sudo systemctl stop etcd"))
    res = lane.invoke("verify", "--suite", "read-only", "--pytest-args", "-k test_etcd_cluster_is_healthy")
    out = _ok(res, code=1)
    assert "e2e tests failed" in res.stderr

    # pytest's JUnit: each failing case links its files, and they exist.
    cases = [c for c in ET.parse(lane.reports_dir / "e2e.xml").iter("testcase") if c.find("failure") is not None]
    assert {c.get("name") for c in cases} == {"test_etcd_cluster_is_healthy[node1]",
                                              "test_etcd_cluster_is_healthy[node2]"}
    for case in cases:
        linked = _attachments(case.findtext("system-out") or "")
        folder = lane.reports_dir / "artifacts" / f"etcd.test_etcd.py.{case.get('name').replace('[', '-')[:-1]}"
        assert linked and all(p.is_absolute() and p.exists() for p in linked), linked
        assert folder / "SUMMARY.txt" in linked
        for node in ("node1", "node2"):
            assert {p.name for p in linked if p.parent == folder / node} >= NODE_FILES
    journal = (folder / "node2" / "journal-etcd.txt").read_text()
    assert "Stopp" in journal, journal[-1500:]  # "Stopping/Stopped etcd.service" on node2
    assert "inactive" in (folder / "node2" / "units.txt").read_text()

    # The lifecycle JUnit: the verify stage links the stage's own snapshot.
    stage = next(c for c in ET.parse(lane.reports_dir / "lifecycle.xml").iter("testcase") if c.get("name") == "verify")
    linked = _attachments(stage.findtext("system-out") or "")
    assert lane.reports_dir / "artifacts" / "stage-verify" / "SUMMARY.txt" in linked
    assert all(p.exists() for p in linked)
    assert "artifacts: " in out

    # A node that accepts TCP but never speaks SSH (paused): collection stays bounded.
    cfg = config.from_effective(lane.run_dir / "cluster.json")
    ssh = json.loads((lane.run_dir / "state.json").read_text())["ssh"]
    shell.run(["docker", "pause", f"{lane.prefix}-node2"])
    try:
        start = time.monotonic()
        got = artifacts.collect(cfg, "paused-node2", ssh)
        took = time.monotonic() - start
    finally:
        shell.run(["docker", "unpause", f"{lane.prefix}-node2"])
    assert took < 60, f"collection took {took:.0f} s with node2 paused"
    assert (got.folder / "node2" / "unreachable.txt").exists()
    assert '"Paused":true' in (got.folder / "node2" / "host-container-state.txt").read_text()
    assert {p.name for p in (got.folder / "node1").iterdir()} >= NODE_FILES

    # sshd stopped on node2: provisioning says which node in one line, quickly.
    shell.run(["docker", "exec", f"{lane.prefix}-node2", "systemctl", "stop", "ssh"])
    start = time.monotonic()
    res = lane.invoke("provision", timeout=300)
    took = time.monotonic() - start
    _ok(res, code=2)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: node2 (127.0.0.1:") and "unreachable over SSH" in lines[0]
    assert took < 120, f"`invoke provision` took {took:.0f} s to give up on node2"

    # Destroy twice: everything goes, the second time there is nothing left to do.
    first = _ok(lane.invoke("destroy"))
    assert f"removing 2 node container(s): {lane.prefix}-node1, {lane.prefix}-node2" in first
    assert lane.leftovers() == {}
    assert "nothing to remove" in _ok(lane.invoke("destroy"))
    assert lane.leftovers() == {}

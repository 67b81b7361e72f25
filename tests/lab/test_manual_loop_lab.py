"""The README's manual loop on the real lab, read as a person reads it: `invoke up`, `invoke
provision`, `invoke verify`, `invoke destroy`, then the run page opened in headless Chromium.

The failing loop breaks one thing the guide sets (node1's line in node2's /etc/hosts, section 3)
after provisioning, so the real read-only pass fails one real check; the page written by the last
task (a passing `destroy`) must still say FAILED, name the verify stage and that check, list
every failed test of the run's passes, and show every task's stages. The passing loop must say
PASSED with all four tasks' stages. The check picked has nothing to do with calicoctl.
"""

from __future__ import annotations

import json
import time

import browser
import pytest

from calicolab.core import shell

pytestmark = pytest.mark.skipif(browser.CHROMIUM is None, reason=browser.MISSING)
CHECK = "test_etc_hosts_names_every_node"  # e2e/hosts/test_hosts.py: guide section 3, no calicoctl
LOOP_TASKS = ["up", "provision", "verify", "destroy"]


def _ok(res, code: int = 0) -> str:
    print(f"[{time.strftime('%H:%M:%S')}] invoke {' '.join(res.args[3:])}: exit {res.returncode}", flush=True)
    assert res.returncode == code, f"exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    assert "Traceback" not in res.stdout + res.stderr, res.stdout[-3000:] + res.stderr
    return res.stdout


def _stages(dom: browser.Dom) -> list[tuple[str, str, str]]:
    return [(e["data-stage"], e["data-task"], e["data-status"]) for e in dom.having("data-task", "stage")]


def _band(dom: browser.Dom) -> tuple[str, str]:
    (band,) = [e for e in dom.elements if e.get("id") == "verdict"]
    return band["data-verdict"], dom.text_in(band)


def test_a_failing_manual_loop_is_a_failed_run_on_its_page(lane, tmp_path):
    _ok(lane.invoke("up", timeout=1500))
    _ok(lane.invoke("provision", timeout=900))
    # Break what provisioning set: node2 no longer names node1 (written in place: Docker
    # bind-mounts /etc/hosts, so it cannot be replaced by a rename).
    shell.run(["docker", "exec", f"{lane.prefix}-node2", "sh", "-c",
               "grep -v '[[:space:]]node1$' /etc/hosts > /tmp/hosts && cat /tmp/hosts > /etc/hosts"])
    # Both passes of the default suite run; the fault pass selects nothing under -k (said, not failed).
    res = lane.invoke("verify", "--pytest-args", f"-k {CHECK}", timeout=900)
    _ok(res, code=1)
    assert "e2e tests failed: read-only checks (pytest exit 1)" in res.stderr
    _ok(lane.invoke("destroy", timeout=600))

    data = json.loads((lane.reports_dir / "run.json").read_text())
    failed = sorted(t["name"] for t in data["tests"] if t["status"] in ("failed", "error"))
    assert failed == [f"{CHECK}[node2]"], failed
    assert {p["name"] for p in data["passes"]} == {"read-only checks", "fault injection"}

    dom = browser.open_page(lane.reports_dir / "index.html", tmp_path)
    verdict, band = _band(dom)
    assert verdict == "failed", band
    assert band.startswith(f"FAILED failed at verify; 1 of 2 tests failed: node2: /etc/hosts entry for node1 "
                           f"({CHECK}[node2], invoke verify)"), band
    assert "exit 1 (invoke verify)" in band and "calico: double" in band
    cards = sorted(e["data-test"] for e in dom.having("data-test", "test-failure"))
    assert cards == failed
    stages = _stages(dom)
    assert {task for _, task, _ in stages} == set(LOOP_TASKS)  # every stage names its task
    assert [(s, t, r) for s, t, r in stages if s != "box"] == [
        ("up", "up", "passed"), ("provision", "provision", "passed"), ("verify", "verify", "failed"),
        ("destroy", "destroy", "passed")]
    passes = {(e["data-junit"], e["data-task"]) for e in dom.having("data-junit", "pass")}
    assert passes == {("e2e.xml", "verify"), ("e2e-disruptive.xml", "verify")}


def test_a_passing_manual_loop_is_passed_with_every_tasks_stages(lane, tmp_path):
    _ok(lane.invoke("up", timeout=1500))
    _ok(lane.invoke("provision", timeout=900))
    _ok(lane.invoke("verify", "--suite", "read-only", "--pytest-args", f"-k {CHECK}", timeout=900))
    _ok(lane.invoke("destroy", timeout=600))

    dom = browser.open_page(lane.reports_dir / "index.html", tmp_path)
    verdict, band = _band(dom)
    assert verdict == "passed", band
    assert band.startswith("PASSED every stage passed; 2 tests passed, none failed"), band
    assert dom.having("data-test", "test-failure") == []
    stages = _stages(dom)
    assert [(s, t, r) for s, t, r in stages if s != "box"] == [
        ("up", "up", "passed"), ("provision", "provision", "passed"), ("verify", "verify", "passed"),
        ("destroy", "destroy", "passed")]
    assert {t for _, t, _ in stages} == set(LOOP_TASKS)

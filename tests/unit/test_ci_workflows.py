"""The nightly workflows (GitHub Actions and GitLab CI) call tasks and lane sets that exist,
keep going when one cell fails, and keep reports whatever happens."""

import re
import subprocess
import sys

import yaml

from calicolab.core import config, paths
from calicolab.runs import matrix

ROOT = paths.ROOT
GITHUB = ROOT / ".github" / "workflows" / "nightly.yml"
GITLAB = ROOT / ".gitlab-ci.yml"


def _tasks() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60).stdout
    names = set()
    for line in out.splitlines():  # "  upgrade.rolling (upgrade)  ...": a task and its namespace's default
        words = line.split() if line.startswith("  ") else []
        names.update(words[:1] + [w.strip("()") for w in words[1:2] if w.startswith("(")])
    return names


def _commands(text: str) -> list[str]:
    return [name.rstrip(".") for name in re.findall(r"invoke ([a-z0-9.-]+)", text)]


def test_github_nightly_is_scheduled_fail_fast_off_and_keeps_reports():
    wf = yaml.safe_load(GITHUB.read_text())
    triggers = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads `on` as true
    assert triggers["schedule"][0]["cron"]
    for name, job in wf["jobs"].items():
        assert job["strategy"]["fail-fast"] is False, name
        assert "self-hosted" in job["runs-on"], name
        always = [s for s in job["steps"] if s.get("if") == "always()"]
        uses = {s.get("uses", "").split("@")[0] for s in always}
        assert {"actions/upload-artifact", "mikepenz/action-junit-report"} <= uses, name
    assert set(wf["jobs"]["vm"]["strategy"]["matrix"]["provider"]) == {"virtualbox", "libvirt"}
    # The guide's own versions run every night on the CentOS VMs (guide [3]: etcd 3.3.11, docker 20.10.21),
    # with the box cached outside the checkout.
    assert "3.3.11" in wf["jobs"]["vm"]["strategy"]["matrix"]["etcd"]
    assert "20.10.21" in wf["jobs"]["vm"]["strategy"]["matrix"]["docker"]
    assert "CALICOLAB_BOX_CACHE" in wf["jobs"]["vm"]["env"]
    gitlab_cells = yaml.safe_load(GITLAB.read_text())["vm"]["parallel"]["matrix"][0]
    assert "20.10.21" in gitlab_cells["DOCKER"] and "3.3.11" in gitlab_cells["ETCD"]
    # Beside the CentOS cells, the Debian 12 box on libvirt (the flavour CI boots for real).
    assert wf["jobs"]["vm-debian"]["strategy"]["matrix"]["os"] == ["debian12"]
    assert "--provider libvirt --os ${{ matrix.os }}" in GITHUB.read_text()


def test_workflows_call_existing_tasks_and_lane_sets():
    tasks = _tasks()
    for path in (GITHUB, GITLAB):
        text = path.read_text()
        called = set(_commands(text))
        assert called and called <= tasks, f"{path.name}: {called - tasks}"
    lane_sets = yaml.safe_load(GITHUB.read_text())["jobs"]["lab"]["strategy"]["matrix"]["lanes"]
    lane_sets += yaml.safe_load(GITLAB.read_text())["lab"]["parallel"]["matrix"][0]["LANES"]
    for lane_set in lane_sets:
        assert matrix.parse_lanes(lane_set)


def test_gitlab_keeps_junit_and_reports_always():
    ci = yaml.safe_load(GITLAB.read_text())
    for name in ("lab", "vm"):
        assert ci[name]["artifacts"]["when"] == "always"
        assert ci[name]["artifacts"]["reports"]["junit"]
        assert "invoke destroy" in " ".join(ci[name]["after_script"])


def test_strict_nights_document_the_lock_and_run_real_calico():
    """Issue 22: the first step (record the lock once on a trusted machine, review, commit) is
    written where the nightly is configured, strict mode stays on, each job shows the lock it
    verifies against, and only the Debian box (which carries the double) asks for the double."""
    gh, gl = yaml.safe_load(GITHUB.read_text()), yaml.safe_load(GITLAB.read_text())
    assert gh["env"]["CALICOLAB_STRICT_ARTIFACTS"] == "true" and gl["variables"]["CALICOLAB_STRICT_ARTIFACTS"] == "true"
    for path in (GITHUB, GITLAB):
        text = path.read_text()
        assert "invoke lock --record" in text and "git add artifacts.lock" in text, path.name
    for name in ("lab", "vm"):
        runs = [s.get("run", "") for s in gh["jobs"][name]["steps"]]
        assert any(r.strip().endswith("invoke lock") for r in runs), name
        assert any("invoke lock" in line for line in gl[name]["script"]), name
        assert "double" not in " ".join(runs) + " ".join(gl[name]["script"]), name
        assert "CALICOLAB_CALICO_SOURCE" not in {**gh["jobs"][name].get("env", {}), **gl[name].get("variables", {})}
    # The lab lanes take cluster.yaml's calico_source: auto (upstream once everything is locked).
    assert config.load(environ={}).calico_source in ("auto", "upstream")
    for lane_set in ("versions", "upgrades"):
        for lane in matrix.parse_lanes(lane_set):
            assert lane.settings.get("calico_source", "auto") in ("auto", "upstream"), lane.name

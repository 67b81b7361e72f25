"""Matrix lanes: parsed from matrix.yaml or inline, each with its own prefix and subnet,
and refused before anything starts when a lane is wrong."""

import re

import pytest

from calicolab.core import config
from calicolab.core.errors import UserError
from calicolab.runs import matrix


def _base():
    return config.load(environ={})


def test_every_lane_set_in_matrix_yaml_plans_with_distinct_prefixes_and_subnets():
    for name in ("ci", "versions", "upgrades"):
        lanes = matrix.plan(_base(), matrix.parse_lanes(name))
        assert len({lane.prefix for lane in lanes}) == len(lanes)
        assert len({lane.subnet for lane in lanes}) == len(lanes)
        assert all(lane.subnet.startswith("192.168.2") and lane.prefix.startswith("calicolab-") for lane in lanes)


def _flags(cmd: list[str]) -> dict[str, str]:
    """--flag value pairs of a command line (the lone --no-idempotence left out)."""
    at = cmd.index("e2e") + 1
    return {cmd[i]: cmd[i + 1] for i in range(at, len(cmd) - 1, 2) if cmd[i].startswith("--")}


def test_inline_lanes_and_their_command_lines(tmp_path):
    base = config.load({"run_dir": str(tmp_path / "run"), "reports_dir": str(tmp_path / "rep"),
                        "history_file": str(tmp_path / "nights.jsonl")}, environ={})
    lanes = matrix.plan(base, matrix.parse_lanes("etcd=3.3.25,docker=20.10.5,suite=upgrade;etcd=3.5.16"))
    assert [(lane.name, lane.suite, lane.subnet) for lane in lanes] == [
        ("lane1", "upgrade", "192.168.224.0/24"), ("lane2", "checks", "192.168.225.0/24")]
    # Everything a lane is told is on its command line, none of it in its environment.
    flags = _flags(matrix.lane_command(base, lanes[0], "passing"))
    assert flags == {"--suite": "upgrade", "--destroy": "passing", "--lane": "lane1", "--prefix": "calicolab-lane1",
                     "--subnet": "192.168.224.0/24", "--run-dir": str(tmp_path / "run" / "lanes" / "lane1"),
                     "--reports-dir": str(tmp_path / "rep" / "lanes" / "lane1"),
                     "--history-file": str(tmp_path / "nights.jsonl"), "--etcd": "3.3.25", "--docker": "20.10.5"}


def test_every_lane_setting_is_a_flag_the_lanes_e2e_takes():
    # matrix.yaml's vm lane sets vm_os (spelt --os) and vm_cpus: the lane's e2e must accept both.
    (vm,) = matrix.plan(_base(), matrix.parse_lanes("vm"))
    flags = _flags(matrix.lane_command(_base(), vm, "always"))
    assert flags["--os"] == "debian12" and flags["--vm-cpus"] == "1" and flags["--provider"] == "libvirt"
    with pytest.raises(UserError, match="unknown setting.s. registry_mirror"):
        matrix.plan(_base(), matrix.parse_lanes("etcd=3.5.16,registry_mirror=https://harbor.example.com"))


def test_a_lane_keeps_the_sites_upstream_settings_and_strict_mode(monkeypatch):
    # The nightly sets strict mode (and a site its mirror, proxy and budgets) for the whole job:
    # every lane it starts must see them, while the caller's cluster settings stay out of the lanes.
    monkeypatch.setenv("CALICOLAB_STRICT_ARTIFACTS", "true")
    monkeypatch.setenv("CALICOLAB_REGISTRY_MIRROR", "https://harbor.example.com")
    monkeypatch.setenv("CALICOLAB_HTTPS_PROXY", "http://proxy.example.com:3128")
    monkeypatch.setenv("CALICOLAB_BUDGETS", "/srv/site-budgets.yaml")
    monkeypatch.setenv("CALICOLAB_ETCD", "3.3.25")
    monkeypatch.setenv("CALICOLAB_CLUSTER_FILE", "/srv/other.yaml")
    monkeypatch.setenv("HOME_OF_THE_JOB", "kept")
    env = config.lane_environ()
    assert env["CALICOLAB_STRICT_ARTIFACTS"] == "true"
    assert env["CALICOLAB_REGISTRY_MIRROR"] == "https://harbor.example.com"
    assert env["CALICOLAB_HTTPS_PROXY"] == "http://proxy.example.com:3128"
    assert env["CALICOLAB_BUDGETS"] == "/srv/site-budgets.yaml"
    assert "CALICOLAB_ETCD" not in env and "CALICOLAB_CLUSTER_FILE" not in env
    assert env["HOME_OF_THE_JOB"] == "kept"


@pytest.mark.parametrize("spec,message", [
    ("nightly-unknown", "unknown lane set 'nightly-unknown'"),
    ("etcd=3.6.0", "lane lane1: etcd 3.6.0 refused: etcd 3.6 removed the v2 API"),
    ("etcd=3.5.16,suite=soak", "unknown suite 'soak'"),
    ("etcd=3.5.16,colour=blue", "unknown setting(s) colour"),
    ("name=a,etcd=3.5.16;name=a,etcd=3.4.23", "lanes need distinct names"),
    ("etcd=3.5.16,idempotence=sometimes", "lane lane1: idempotence 'sometimes': use true or false"),
])
def test_bad_lanes_are_refused_in_one_line(spec, message):
    with pytest.raises(UserError) as err:
        matrix.plan(_base(), matrix.parse_lanes(spec))
    assert message in str(err.value)


def test_a_lane_can_skip_the_idempotence_pass_and_says_so():
    (vm,) = matrix.parse_lanes("vm")  # CI's VM lane (matrix.yaml)
    assert not vm.idempotence and "no idempotence pass" in vm.label()
    assert matrix.lane_command(_base(), vm, "always")[-1] == "--no-idempotence"
    lab = matrix.parse_lanes("etcd=3.5.16")[0]
    assert lab.idempotence and "--no-idempotence" not in matrix.lane_command(_base(), lab, "always")


def test_table_counts_tests_and_marks_failures():
    ok = matrix.Lane("a", {"etcd": "3.5.16"}, rc=0, seconds=40.0, stages={"up": 10.0}, calico="double",
                     tests={"tests": 10, "failures": 0, "errors": 0, "skipped": 2})
    bad = matrix.Lane("b", {}, rc=1, seconds=20.0, tests={"tests": 5, "failures": 1, "errors": 0, "skipped": 0})
    lines = matrix.table([ok, bad], 41.0).splitlines()
    head = re.split(r" {2,}", lines[0])
    assert head == ["lane", "versions / suite", "calico", "result", "tests", "up", "provision", "verify", "total"]
    a, b = (dict(zip(head, re.split(r" {2,}", line.strip()), strict=True)) for line in lines[2:4])
    assert (a["lane"], a["calico"], a["result"], a["tests"], a["up"], a["total"]) == (
        "a", "double", "passed", "8/10 (2 skipped)", "10.0", "40.0")  # which Calico each lane tested
    assert (b["lane"], b["result"], b["tests"], b["up"], b["total"]) == ("b", "FAILED (rc 1)", "4/5", "0.0", "20.0")
    assert lines[4] == "wall clock for all lanes: 41.0 s"
    assert "not real Calico" in lines[5]

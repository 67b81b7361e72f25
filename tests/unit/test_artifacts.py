"""Failure artifacts with fake nodes: what is collected, where it goes, how JUnit links it, and
that a dead or slow node cannot hold the collection up."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import xml.etree.ElementTree as ET

import pytest
from fakes import FakeNode

from calicolab.core import config
from calicolab.core.errors import StageFailed, UserError
from calicolab.core.remote import CommandResult
from calicolab.report import artifacts
from calicolab.runs.lifecycle import Lifecycle

FAKE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAA\n" \
           "-----END OPENSSH PRIVATE KEY-----\n"
SSH = {name: {"name": name, "host": "127.0.0.1", "port": port, "user": "vagrant", "key_file": "/k"}
       for name, port in (("node1", 2201), ("node2", 2202))}


def _cfg(tmp_path, **env):
    environ = {"CALICOLAB_REPORTS_DIR": str(tmp_path / "reports"), "CALICOLAB_RUN_DIR": str(tmp_path / "run"),
               "CALICOLAB_PREFIX": "arti", **env}
    return config.load(environ=environ)


class DeadNode:
    """Answers like calicolab.remote.Node does when SSH is gone."""

    def __init__(self, name: str) -> None:
        self.name, self.calls = name, 0

    def run(self, cmd: str, **_kwargs) -> CommandResult:
        self.calls += 1
        raise UserError(f"{self.name} (127.0.0.1:2202) is unreachable over SSH (EOFError): run `invoke up`")


SHELL = r"^timeout -k 2 10 sh -c "  # how artifacts.node_probes wraps a shell probe


def _probe_rules(ip: str) -> dict[str, tuple[int, str]]:
    """An answer for each of artifacts.node_probes' commands: a node whose calico-node is down."""
    return {
        SHELL + r"'journalctl -u etcd ": (0, "etcd started\n"),
        SHELL + r"'journalctl -u (docker|calico-node) ": (0, "-- No entries --\n"),
        SHELL + r"'systemctl --no-pager --full status etcd docker calico-node'$": (3, "calico-node.service failed\n"),
        r"^ETCDCTL_API=2 etcdctl --endpoints \S+ member list$": (0, f"4386666900514948734: name=node1 "
                                                               f"peerURLs=http://{ip}:2380 isLeader=true\n"),
        r"^ETCDCTL_API=2 etcdctl --endpoints \S+ cluster-health$": (0, "cluster is healthy\n"),
        r"^ETCDCTL_API=3 etcdctl --endpoints \S+ member list -w table$": (0, "| 3cdf | started | node1 |\n"),
        r"^ETCDCTL_API=3 etcdctl --endpoints \S+ endpoint health$": (0, f"http://{ip}:2379 is healthy\n"),
        r"^ETCDCTL_API=3 etcdctl --endpoints \S+ endpoint status -w table$": (0, f"| http://{ip}:2379 | 3.4.23 |\n"),
        SHELL + r"'/usr/local/bin/calicoctl node status'$": (1, "Calico process is not running.\n"),
        SHELL + r".*docker exec calico-node sh -c .*birdcl -s /var/run/calico/bird\.ctl show protocols all":
            (1, "Error: No such container: calico-node\n"),
        SHELL + r"'ip addr'$": (0, f"2: eth1: <BROADCAST,MULTICAST,UP>\n    inet {ip}/24 scope global eth1\n"),
        SHELL + r"'ip route show table all'$": (0, "default via 10.0.2.2 dev eth0\n"),
        SHELL + r"'ip neigh show; ping": (0, f"{ip} dev eth1 lladdr 52:54:00:10:b9:3d REACHABLE\n"),
        SHELL + r"iptables-save$": (0, "*filter\nCOMMIT\n"),
        SHELL + r"'docker info'$": (0, f" Cluster Store: etcd://{ip}:2379\n"),
        SHELL + r"'docker ps -a --no-trunc'$": (0, "CONTAINER ID   IMAGE   COMMAND   STATUS   NAMES\n"),
        SHELL + r"'docker logs --timestamps --tail 500 calico-node'$": (0, "leaked key:\n" + FAKE_KEY),
        SHELL + r"'for f in /var/log/calico/\*/current; ": (0, "== /var/log/calico/felix/current\nfelix up\n"),
    }


def _fake_factory(made: dict, dead: set[str] = frozenset()):
    def factory(target, ip):
        node = DeadNode(target.name) if target.name in dead else FakeNode(target.name, ip, _probe_rules(ip))
        made[target.name] = node
        return node
    return factory


def _host_run(seen: list):
    def run(cmd, timeout):
        seen.append((cmd, timeout))
        return 0, '{"Status":"running"}\n', ""
    return run


def test_collects_every_probe_from_every_node_into_labelled_folders(tmp_path):
    cfg = _cfg(tmp_path)
    made, host_calls = {}, []
    got = artifacts.collect(cfg, "e2e/test_etcd.py::test_etcd_cluster_is_healthy[node1]", SSH,
                            node_factory=_fake_factory(made), host_run=_host_run(host_calls))
    assert got.folder == cfg.reports_path / "artifacts" / "test_etcd.py.test_etcd_cluster_is_healthy-node1"
    for node in ("node1", "node2"):
        names = {p.name for p in (got.folder / node).iterdir()}
        assert {"journal-etcd.txt", "journal-docker.txt", "journal-calico-node.txt", "etcd-member-list.txt",
                "etcd-health.txt", "etcd-status.txt", "calicoctl-node-status.txt", "bird-protocols.txt",
                "ip-addr.txt", "ip-route.txt", "iptables-save.txt", "docker-info.txt", "docker-ps.txt",
                "calico-node-logs.txt", "calico-service-logs.txt", "host-container-state.txt",
                "host-container-logs.txt"} <= names
    etcd_journal = (got.folder / "node1" / "journal-etcd.txt").read_text()
    assert etcd_journal.startswith("$ journalctl -u etcd") and "# exit 0" in etcd_journal
    assert "etcd started" in etcd_journal
    assert "# exit 1" in (got.folder / "node2" / "calicoctl-node-status.txt").read_text()
    # The lab's node containers are asked about from the host too, by their Vagrant names.
    assert ["docker", "logs", "--timestamps", "--tail", "300", "arti-node2"] in [c for c, _ in host_calls]
    # Every file is linked, by absolute path, and a summary comes first.
    lines = got.attachment_lines()
    assert lines[0] == f"[[ATTACHMENT|{got.folder / 'SUMMARY.txt'}]]"
    assert len(lines) == len(got.files) and all(line.startswith("[[ATTACHMENT|/") for line in lines)


def test_commands_carry_a_node_side_timeout_and_the_right_etcdctl(tmp_path):
    made: dict = {}
    artifacts.collect(_cfg(tmp_path, CALICOLAB_ETCD="3.4.23"), "stage-provision", SSH,
                      node_factory=_fake_factory(made), host_run=_host_run([]))
    cmds = made["node1"].commands
    assert all(c.startswith(("timeout -k 2 10 sh -c", "ETCDCTL_API=")) for c in cmds), cmds
    assert any(c.startswith("ETCDCTL_API=2 etcdctl --endpoints http://192.168.") and c.endswith("cluster-health")
               for c in cmds)
    assert any(c.startswith("ETCDCTL_API=3 ") and c.endswith("endpoint status -w table") for c in cmds)
    assert any("docker exec calico-node" in c and "birdcl -s /var/run/calico/bird.ctl show protocols all" in c
               for c in cmds)
    made = {}
    artifacts.collect(_cfg(tmp_path, CALICOLAB_ETCD="3.5.16"), "stage-provision", SSH,
                      node_factory=_fake_factory(made), host_run=_host_run([]))
    assert any(c.startswith("ETCDCTL_API=3 ") and c.endswith("endpoint health") for c in made["node1"].commands)


def test_private_keys_in_collected_output_are_redacted(tmp_path):
    got = artifacts.collect(_cfg(tmp_path), "stage-verify", SSH, node_factory=_fake_factory({}),
                            host_run=_host_run([]))
    text = (got.folder / "node1" / "calico-node-logs.txt").read_text()
    assert "leaked key:" in text and "PRIVATE KEY" not in text and "b3BlbnNzaC1rZXkt" not in text


def test_an_unreachable_node_is_asked_once_and_noted(tmp_path):
    made: dict = {}
    got = artifacts.collect(_cfg(tmp_path), "stage-provision", SSH, node_factory=_fake_factory(made, {"node2"}),
                            host_run=_host_run([]))
    assert made["node2"].calls == 1
    assert (got.folder / "node2" / "unreachable.txt").read_text().startswith("node2 (127.0.0.1:2202) is unreachable")
    assert (got.folder / "node2" / "host-container-logs.txt").exists()  # the host still had something to say
    assert any(n.startswith("node2: node commands skipped: node2 (127.0.0.1:2202) is unreachable") for n in got.notes)
    assert len(list((got.folder / "node1").glob("*.txt"))) >= 14  # the healthy node is complete
    assert "note: node2: node commands skipped" in (got.folder / "SUMMARY.txt").read_text()


def test_a_node_without_ssh_settings_still_gets_host_side_files(tmp_path):
    got = artifacts.collect(_cfg(tmp_path), "stage-verify", {"node1": SSH["node1"]},
                            node_factory=_fake_factory({}), host_run=_host_run([]))
    assert (got.folder / "node2" / "unreachable.txt").read_text() == "no SSH settings for this node\n"


def test_the_per_node_deadline_stops_a_slow_node(tmp_path):
    release = threading.Event()

    def hanging(cmd, **_kwargs):
        if "journalctl -u etcd" not in cmd:  # the first command answers, the others hang
            release.wait(10)
        return CommandResult("node1", cmd, 0, "late\n", "")

    node = FakeNode("node1")
    node.run = hanging  # type: ignore[method-assign]
    start = time.monotonic()
    try:
        files, notes = artifacts.collect_node(node, artifacts.node_probes(_cfg(tmp_path)), [], tmp_path / "node1",
                                              deadline=0.3)
    finally:
        release.set()
    assert time.monotonic() - start < 5
    assert [f.name for f in files] == ["journal-etcd.txt"]
    assert len(notes) == 1 and notes[0].startswith("node1: stopped after 0 s; not collected: ")
    assert "calicoctl-node-status.txt" in notes[0] and "journal-etcd.txt" not in notes[0]


def test_slow_commands_on_one_node_overlap(tmp_path):
    at_once, most = [0], [0]
    lock = threading.Lock()
    overlapped = threading.Event()  # set once PROBES_AT_ONCE commands ran together

    def slow(cmd, **_kwargs):
        if "journalctl -u etcd" not in cmd:
            with lock:
                at_once[0] += 1
                most[0] = max(most[0], at_once[0])
                if at_once[0] == artifacts.PROBES_AT_ONCE:
                    overlapped.set()
            overlapped.wait(5)
            with lock:
                at_once[0] -= 1
        return CommandResult("node1", cmd, 124, "", "timed out after 15 s")

    node = FakeNode("node1")
    node.run = slow  # type: ignore[method-assign]
    files, notes = artifacts.collect_node(node, artifacts.node_probes(_cfg(tmp_path)), [], tmp_path / "node1")
    assert most[0] == artifacts.PROBES_AT_ONCE and notes == []
    assert len(files) == len(artifacts.node_probes(_cfg(tmp_path)))
    assert "# exit 124 (timed out)" in (tmp_path / "node1" / "docker-info.txt").read_text()


def test_a_rerun_replaces_stale_files(tmp_path):
    cfg = _cfg(tmp_path)
    stale = cfg.reports_path / "artifacts" / "stage-verify" / "node1" / "old.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("from an earlier run")
    artifacts.collect(cfg, "stage-verify", SSH, node_factory=_fake_factory({}), host_run=_host_run([]))
    assert not stale.exists()


def test_collect_quietly_never_raises(tmp_path, capsys):
    def broken(_target, _ip):
        raise RuntimeError("boom")

    cfg = _cfg(tmp_path)
    got = artifacts.collect_quietly(cfg, "stage-verify", SSH, node_factory=broken, host_run=_host_run([]))
    assert got is not None and (got.folder / "node1" / "unreachable.txt").read_text().startswith(
        "cannot set up SSH (RuntimeError: boom)")

    unwritable = _cfg(tmp_path, CALICOLAB_REPORTS_DIR="/dev/null/reports")
    assert artifacts.collect_quietly(unwritable, "stage-verify", SSH, node_factory=_fake_factory({}),
                                     host_run=_host_run([])) is None
    out = capsys.readouterr().out
    assert out.startswith("artifacts for stage-verify not collected: ") and "Traceback" not in out


# -- the lifecycle: a failing stage collects and its JUnit case links the files ------------------
@pytest.mark.parametrize("stage,collected", [("provision", True), ("idempotence", True), ("verify", True),
                                             ("up", False)])
def test_a_failing_stage_collects_and_links_its_artifacts(tmp_path, monkeypatch, stage, collected):
    cfg = _cfg(tmp_path)
    calls = []

    def fake_collect(cfg_, label, ssh, **_kw):
        calls.append(label)
        folder = cfg_.reports_path / "artifacts" / label
        folder.mkdir(parents=True)
        (folder / "SUMMARY.txt").write_text("x")
        return artifacts.Collection(label, folder, [folder / "SUMMARY.txt"], ["node2: unreachable"])

    monkeypatch.setattr(artifacts, "collect_quietly", fake_collect)
    lc = Lifecycle(cfg, say=lambda _m: None)
    with pytest.raises(StageFailed), lc.stage(stage):
        raise StageFailed("broken on purpose")
    lc.finish()
    assert calls == ([f"stage-{stage}"] if collected else [])
    case = next(c for c in ET.parse(cfg.reports_path / "lifecycle.xml").iter("testcase") if c.get("name") == stage)
    out = case.findtext("system-out") or ""
    want = f"[[ATTACHMENT|{cfg.reports_path / 'artifacts' / f'stage-{stage}' / 'SUMMARY.txt'}]]"
    assert (want in out) is collected
    assert case.find("failure") is not None


def test_ctrl_c_in_a_stage_does_not_collect(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(artifacts, "collect_quietly", lambda *a, **k: calls.append(a))
    lc = Lifecycle(_cfg(tmp_path), say=lambda _m: None)
    with pytest.raises(KeyboardInterrupt), lc.stage("provision"):
        raise KeyboardInterrupt
    assert calls == []


# -- the pytest side: the hook's text reaches JUnit's system-out, also under xdist ----------------
class _Item:
    nodeid = "e2e/test_calico.py::test_bgp_mesh_established[node2]"

    def __init__(self) -> None:
        self.sections: list[tuple[str, str, str]] = []

    def add_report_section(self, when, key, content):
        self.sections.append((when, key, content))


class _Report:
    when = "call"

    def __init__(self) -> None:
        self.sections: list[tuple[str, str]] = []


def test_on_failed_test_puts_attachment_lines_into_the_captured_stdout(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    cluster_json = config.write_effective(cfg)
    state_json = cfg.run_path / "state.json"
    state_json.write_text(json.dumps({"ssh": SSH}))
    seen = {}

    def fake_collect(cfg_, label, ssh, **_kw):
        seen.update(label=label, ssh=ssh)
        folder = cfg_.reports_path / "artifacts" / artifacts.safe_label(label)
        return artifacts.Collection(label, folder, [folder / "node1" / "ip-route.txt"], [])

    monkeypatch.setattr(artifacts, "collect_quietly", fake_collect)
    monkeypatch.setattr(artifacts, "_collected_in_this_process", 0)
    item, report = _Item(), _Report()
    artifacts.on_failed_test(item, report, cluster_json, state_json)
    assert seen == {"label": _Item.nodeid, "ssh": SSH}
    folder = cfg.reports_path / "artifacts" / "test_calico.py.test_bgp_mesh_established-node2"
    line = f"[[ATTACHMENT|{folder}/node1/ip-route.txt]]"
    assert report.sections == [("Captured stdout artifacts", f"artifacts: {folder} (1 files)\n")]
    assert item.sections[0][:2] == ("call", "stdout") and line in item.sections[0][2]


def test_on_failed_test_stops_collecting_at_the_runs_limit(tmp_path, monkeypatch):
    # The limit is the run's artifact_limit, read from the run folder's cluster.json.
    cluster_json = config.write_effective(config.load({"run_dir": str(tmp_path / "run"), "artifact_limit": "1"},
                                                      environ={}))
    monkeypatch.setattr(artifacts, "_collected_in_this_process", 1)
    monkeypatch.setattr(artifacts, "collect_quietly", lambda *a, **k: pytest.fail("collected past the limit"))
    report = _Report()
    artifacts.on_failed_test(_Item(), report, cluster_json, tmp_path / "state.json")
    assert "limit of 1 per test process reached" in report.sections[0][1]


def test_on_failed_test_without_a_cluster_does_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts, "_collected_in_this_process", 0)
    report = _Report()
    assert artifacts.on_failed_test(_Item(), report, tmp_path / "none.json", tmp_path / "s.json") is None
    assert report.sections == []


@pytest.mark.parametrize("workers", ["0", "2"])
def test_report_sections_reach_junit_system_out(tmp_path, workers):
    """The mechanism the top-level conftest relies on, with the project's junit_logging setting."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_makereport(item, call):
            report = yield
            if report.failed and report.when == "call":
                item.add_report_section("call", "stdout", "[[ATTACHMENT|/abs/artifact.txt]]\\n")
            return report
    """))
    (tmp_path / "test_x.py").write_text("def test_fails():\n    assert 1 == 2\n\ndef test_passes():\n    pass\n")
    xml = tmp_path / "out.xml"
    subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "-p", "no:cacheprovider", "-n", workers,
                    "-o", "junit_logging=system-out", f"--junitxml={xml}", "-q", "--rootdir", str(tmp_path)],
                   cwd=tmp_path, capture_output=True, text=True, timeout=120)
    cases = {c.get("name"): c for c in ET.parse(xml).iter("testcase")}
    assert "[[ATTACHMENT|/abs/artifact.txt]]" in (cases["test_fails"].findtext("system-out") or "")
    assert "ATTACHMENT" not in (cases["test_passes"].findtext("system-out") or "")


def test_project_pytest_settings_write_captured_stdout_to_junit():
    from calicolab.core.paths import ROOT

    text = (ROOT / "pyproject.toml").read_text()
    assert 'junit_logging = "system-out"' in text


def test_an_e2e_test_gets_a_folder_named_after_its_section_module_and_case():
    assert artifacts.safe_label("e2e/etcd/test_etcd.py::test_etcd_cluster_is_healthy[node1]") == \
        "etcd.test_etcd.py.test_etcd_cluster_is_healthy-node1"
    assert artifacts.safe_label("stage-verify") == "stage-verify"


def test_a_probe_whose_command_is_missing_says_so_in_its_file(tmp_path):
    # calicoctl by its absolute path (CentOS 7's sudo secure_path has no /usr/local/bin); when it
    # still exits 127 (POSIX: not found), the file says the command did not run, so an empty file
    # is not read as Calico saying nothing.
    made: dict = {}

    def factory(target, ip):
        node = _fake_factory(made)(target, ip)
        node.prefer(SHELL + r"'/usr/local/bin/calicoctl node status'$", (127, ""))
        return node

    got = artifacts.collect(_cfg(tmp_path), "stage-verify", SSH, node_factory=factory, host_run=_host_run([]))
    assert any("'/usr/local/bin/calicoctl node status'" in c for c in made["node1"].commands)
    text = (got.folder / "node1" / "calicoctl-node-status.txt").read_text()
    assert text.startswith("$ /usr/local/bin/calicoctl node status\n")
    assert "# exit 127 (the command is missing or cannot run" in text

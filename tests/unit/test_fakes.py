"""The strict FakeNode (tests/fakes.py): it answers only from its rules and its file emulation,
fails loudly on any other command, and fails the test even when the code under test swallows
that failure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import fakes
import pytest
from fake_cluster import fake_view
from fakes import FakeNode, UnexpectedCommand

from calicolab.core.remote import RemoteCommandFailed
from calicolab.diagnose import checks

TESTS = Path(__file__).resolve().parents[1]


def test_an_unknown_command_raises_naming_node_command_and_rules():
    node = FakeNode("node2", rules={r"^systemctl is-active etcd$": "active\n", r"^sysctl -n ": "1\n"})
    with pytest.raises(UnexpectedCommand) as err:
        node.run("systemctl is-active docker")
    text = str(err.value)
    assert "FakeNode node2" in text and "'systemctl is-active docker'" in text
    assert "'^systemctl is-active etcd$'" in text and "'^sysctl -n '" in text
    assert isinstance(err.value, AssertionError)  # pytest shows it as a failed assertion
    assert (err.value.node, err.value.cmd) == ("node2", "systemctl is-active docker")
    assert node.unexpected == ["systemctl is-active docker"] and node.commands == ["systemctl is-active docker"]
    node.unexpected.clear()  # this test wanted the surprise: do not fail it at the end


def test_a_node_without_rules_answers_nothing():
    node = FakeNode()
    with pytest.raises(UnexpectedCommand, match=r"\(none\)"):
        node.run("true")
    node.unexpected.clear()


def test_a_swallowed_surprise_is_still_caught():
    def best_effort(node: FakeNode) -> str:  # like artifacts.collect, which catches everything
        try:
            return node.run("docker info").stdout
        except Exception:  # noqa: BLE001 - the point of the test
            return ""

    node = FakeNode(rules={r"^true$": ""})
    assert best_effort(node) == ""
    with pytest.raises(AssertionError, match=r"(?s)FakeNode node1 was asked .*swallowed.*'docker info'"):
        fakes.assert_no_surprises()  # what tests/conftest.py's hook calls after each test
    assert node.unexpected == ["docker info"]


def test_the_conftest_hook_fails_a_test_whose_code_swallowed_the_surprise(tmp_path):
    """A pytest run of its own with tests/conftest.py: the swallowing test fails (as itself, not as
    an extra error), a test that failed on the raise is reported once, a clean one passes."""
    (tmp_path / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    (tmp_path / "test_inner.py").write_text(textwrap.dedent('''
        import pytest
        from fakes import FakeNode

        def quietly(node):
            try:
                return node.run("ss -Htn state syn-sent").stdout
            except Exception:
                return ""

        @pytest.fixture
        def made_in_a_fixture():
            return FakeNode("node2", rules={r"^true$": ""})

        def test_swallowed(made_in_a_fixture):
            assert quietly(made_in_a_fixture) == ""

        def test_raised():
            FakeNode().run("ping -c 1 10.0.0.2")

        def test_clean():
            assert FakeNode(rules={r"^true$": ""}).run("true").ok
    '''))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "300"}  # the summary lines in full
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          "--rootdir", str(tmp_path), str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert re.search(r"^2 failed, 1 passed in ", out, re.MULTILINE), out  # no "errors": each failure once
    assert "FAILED test_inner.py::test_swallowed - AssertionError: FakeNode node2 was asked" in out, out
    assert "'ss -Htn state syn-sent'" in out
    assert "FAILED test_inner.py::test_raised - fakes.UnexpectedCommand: FakeNode node1 has no rule" in out, out


def test_rules_regex_first_match_and_the_three_answer_forms():
    seen: list[str] = []

    def callable_answer(cmd: str) -> tuple[int, str]:
        seen.append(cmd)
        return 3, "inactive\n"

    node = FakeNode(rules={r"is-active etcd": callable_answer, r"is-active": (0, "active\n"), r"^hostname$": "node1\n"})
    assert (node.run("systemctl is-active etcd").rc, seen) == (3, ["systemctl is-active etcd"])
    assert node.run("systemctl is-active docker").stdout == "active\n"  # searched, not matched at the start
    assert (node.run("hostname").rc, node.run("hostname").stdout) == (0, "node1\n")
    node.prefer(r"is-active docker", (3, "failed\n"))
    assert node.run("systemctl is-active docker").stdout == "failed\n"  # tried before the rest
    assert list(node.rules)[0] == r"is-active docker"


def test_check_raises_like_the_real_node():
    node = FakeNode(rules={r"^false$": (1, "")})
    with pytest.raises(RemoteCommandFailed, match="`false` on node1 exited 1"):
        node.run("false", check=True)
    assert node.run("false").rc == 1


def test_files_puts_reads_modes_and_the_log():
    node = FakeNode()
    node.put("a\n", "/etc/x", "0600")
    node.put_private("KEY", "/etc/k.pem", "etcd")
    assert node.read("/etc/x") == "a\n" and node.read("/etc/absent") is None
    assert node.run("stat -c %a /etc/x").stdout == "600\n"
    assert node.run("stat -c %a '/etc/k.pem'").stdout == "600\n" and node.owners["/etc/k.pem"] == "etcd"
    assert node.run("stat -c %a /etc/absent").rc == 1
    assert node.puts == ["/etc/x", "/etc/k.pem"]
    assert node.commands == ["stat -c %a /etc/x", "stat -c %a '/etc/k.pem'", "stat -c %a /etc/absent"]
    assert node.log[:4] == [("put", "/etc/x"), ("put_private", "/etc/k.pem"), ("read", "/etc/x"),
                            ("read", "/etc/absent")]
    node.close()
    assert node.closed and (node.name, node.ip, node.target.name) == ("node1", "192.168.223.131", "node1")


def test_the_healthy_fake_cluster_answers_every_command_of_every_check():
    view = fake_view()
    checks.run(view)
    for node in view.nodes.values():
        assert node.unexpected == [] and node.commands  # type: ignore[attr-defined]

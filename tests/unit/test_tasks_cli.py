"""Bad input on the command line: one line saying what is wrong and what to do, non-zero exit,
no traceback, and nothing half-made left behind (no node container, no network, no Vagrant
dotfile). Every run gets its own prefix, run and reports folders."""

import contextlib
import importlib.util
import io
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest
from invoke import Collection, Program

from calicolab.core import paths

ROOT = paths.ROOT
PREFIX = "badinput"
SUBNET = "192.168.229.0/24"  # only ever checked, never brought up


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALICOLAB_")}
    env.update(CALICOLAB_PREFIX=PREFIX, CALICOLAB_SUBNET=SUBNET, CALICOLAB_RUN_DIR=str(tmp_path / "run"),
               CALICOLAB_REPORTS_DIR=str(tmp_path / "reports"), CALICOLAB_CALICO_SOURCE="double")
    env.update(extra)
    return env


def _invoke(*args, env=None, tmp_path=None):
    if env is None and tmp_path is not None:
        env = _env(tmp_path)
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def _docker_engine_up() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def _assert_one_line(res, fragment: str, code: int = 2) -> str:
    assert res.returncode == code, res.stderr + res.stdout[-1500:]
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    return lines[0]


def _assert_nothing_made(tmp_path, subnet: str = SUBNET, prefix: str = PREFIX) -> None:
    assert not (tmp_path / "run" / ".vagrant").exists()
    if _docker_engine_up():
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=calicolab.prefix={prefix}"],
                              capture_output=True, text=True).stdout.split()
        assert left == []
        assert subprocess.run(["docker", "network", "inspect", f"vagrant_network_{subnet}"],
                              capture_output=True).returncode != 0


@pytest.mark.parametrize("args,fragment", [
    (["bench", "--runs", "abc"], "--runs must be a whole number, not 'abc'"),
    (["bench.lifecycle", "--runs", "0"], "--runs must be 1 or more, not 0"),
    (["bench.lanes", "--count", "x"], "--count must be a whole number, not 'x'"),
    (["bench.lanes", "--count", "1"], "--count must be 2 or more, not 1"),
    (["bench.checker", "--operations", "many"], "--operations must be a whole number, not 'many'"),
    (["bench.against-lab", "--suite", "everything"], "unknown suite 'everything'"),
    (["report.history", "--last", "0"], "--last must be 1 or more, not 0"),
    (["config", "--provider", "hyperv"], "unknown provider 'hyperv'"),
    (["config", "--os", "windows"], "unknown VM box flavour 'windows'"),
    (["matrix", "--parallel", "x"], "--parallel must be a whole number, not 'x'"),
    (["matrix", "--lanes", "nightly-unknown"], "unknown lane set 'nightly-unknown'"),
    (["upgrade", "--etcd", "3.6.0"], "etcd 3.6.0 refused"),
    (["e2e", "--suite", "everything"], "unknown suite 'everything'"),
    (["e2e", "--provider", "hyperv"], "unknown provider 'hyperv': use one of docker, virtualbox, libvirt"),
    (["up", "--etcd", "3.6.0"], "etcd 3.6.0 refused"),
    (["e2e", "--docker", "26.1.5"], "docker 26.1.5 refused"),
    (["e2e", "--calico", "v3.0.0"], "calico v3.0.0 refused: Calico 3 dropped the Docker libnetwork driver"),
    (["e2e", "--etcd", "3.4.99"], "etcd 3.4.99 is not available for the docker provider: choose one of"),
    (["up", "--docker", "20.10.21"], "docker 20.10.21 is not available for the docker provider"),
    (["e2e", "--etcd", "latest"], "malformed etcd version 'latest': write it like 3.4.23"),
    (["e2e", "--subnet", "192.168.300.0/24"], "malformed subnet '192.168.300.0/24'"),
    (["e2e", "--subnet", "192.168.241.7/24"], "malformed subnet '192.168.241.7/24'"),
    (["e2e", "--subnet", "192.168.241.0/30"], "is not a host address of 192.168.241.0/30"),
    (["e2e", "--run-dir", "/dev/null/run"], "cannot be written"),
    (["up", "--reports-dir", "/dev/null/reports"], "cannot be written"),
    (["e2e", "--destroy", "sometimes"], "unknown destroy policy 'sometimes'"),
    (["e2e", "--suite", "nightly"], "unknown suite 'nightly'"),
    (["ssh", "node9"], "unknown node 'node9'"),
    (["e2e", "--privileged", "maybe"], "privileged must be true, false or auto"),
    (["e2e", "--plant", "fault=bgp-drop:0"], "--plant fault='bgp-drop:0' is not known: use fault=bgp-drop:SECONDS"),
    (["verify", "--plant", "colour=blue"], "--plant 'colour=blue': write KIND=VALUE"),
    (["upgrade", "--etcd", "3.5.16", "--plant", "probe=drop-everything"], "--plant probe='drop-everything'"),
    (["upgrade.drill", "--etcd", "3.5.16", "--plant", "history=lost"], "--plant history='lost' is not known"),
])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, args, fragment):
    _assert_one_line(_invoke(*args, tmp_path=tmp_path), fragment)
    _assert_nothing_made(tmp_path)


def test_malformed_node_ip_in_the_cluster_file(tmp_path):
    text = (ROOT / "cluster.yaml").read_text().replace("ip: 192.168.223.131", "ip: 192.168.223.331")
    assert "192.168.223.331" in text
    (tmp_path / "cluster.yaml").write_text(text)
    env = _env(tmp_path, CALICOLAB_CLUSTER_FILE=str(tmp_path / "cluster.yaml"))
    del env["CALICOLAB_SUBNET"]  # the file's own subnet, so the node IP is taken as written
    _assert_one_line(_invoke("e2e", env=env), "malformed IP '192.168.223.331' for node1: write it like")
    _assert_nothing_made(tmp_path)


def test_a_cluster_file_that_is_not_yaml(tmp_path):
    (tmp_path / "cluster.yaml").write_text("prefix: [unclosed\n")
    env = _env(tmp_path, CALICOLAB_CLUSTER_FILE=str(tmp_path / "cluster.yaml"))
    _assert_one_line(_invoke("up", env=env), "is not valid YAML (line 2): fix the file")


def _host_subnet() -> str | None:
    """A /24 around an address this machine already has (docker0, eth0...)."""
    out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True)
    for link in json.loads(out.stdout or "[]"):
        if link.get("ifname") == "lo" or link.get("ifname", "").startswith("br-"):
            continue  # br-*: other clusters' networks come and go
        for addr in link.get("addr_info", []):
            net = ipaddress.ip_network(f"{addr['local']}/24", strict=False)
            return str(net)
    return None


def test_a_subnet_already_on_a_host_interface(tmp_path):
    if not _docker_engine_up():
        pytest.skip("needs the Docker engine (the subnet is checked after the lab tools): run `invoke setup`")
    subnet = _host_subnet()
    if subnet is None:
        pytest.skip("this machine has no IPv4 interface besides lo to collide with")
    res = _invoke("e2e", env=_env(tmp_path, CALICOLAB_SUBNET=subnet))
    line = _assert_one_line(res, f"subnet {subnet} is already on host interface ")
    assert line.endswith("remove it or choose another with --subnet")
    assert "==> box" not in res.stdout  # told before any image is built
    _assert_nothing_made(tmp_path, subnet)


def _path_with(tmp_path, *tools: str) -> str:
    """A PATH holding only the given tools (symlinks to the real ones)."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for tool in tools:
        real = shutil.which(tool)
        if real is None:
            pytest.skip(f"{tool} is not installed here (run `invoke setup`), so it cannot be offered")
        (folder / tool).symlink_to(real)
    return str(folder)


@pytest.mark.parametrize("present,missing,hint", [
    ((), "docker", "run `invoke setup` to install and start the Docker engine"),
    (("docker",), "vagrant", "run `invoke setup` (apt-get install vagrant)"),
    (("docker", "vagrant"), "packer", "run `invoke setup` (apt-get install packer)"),
])
def test_a_missing_tool_is_named_with_how_to_install_it(tmp_path, present, missing, hint):
    if present and not _docker_engine_up():
        pytest.skip(f"needs the Docker engine to get as far as the {missing} check: run `invoke setup`")
    env = _env(tmp_path, PATH=_path_with(tmp_path, *present))
    line = _assert_one_line(_invoke("e2e", env=env), f"{missing} is not installed: {hint}")
    assert line == f"error: {missing} is not installed: {hint}"
    _assert_nothing_made(tmp_path)


def test_a_docker_engine_that_does_not_answer(tmp_path):
    if not shutil.which("docker"):
        pytest.skip("the docker CLI is not installed (run `invoke setup`)")
    env = _env(tmp_path, DOCKER_HOST=f"unix://{tmp_path}/no-such-docker.sock")
    _assert_one_line(_invoke("up", env=env), "the Docker engine is not running: run `invoke setup`")
    _assert_nothing_made(tmp_path)


FAKE_VAGRANT = """#!/bin/sh
# Vagrant as seen by the tasks: SSH on a port where nothing listens (every node, one call).
case "$1" in
  ssh-config) for n in node1 node2; do
                printf 'Host %s\\n  HostName 127.0.0.1\\n  User vagrant\\n  Port {port}\\n  IdentityFile {key}\\n\\n' $n
              done ;;
  *) echo "fake vagrant cannot $1" >&2; exit 1 ;;
esac
"""
# Docker as the lab's status reads it: both recorded node containers running; anything else
# (the node images) goes to the real Docker.
FAKE_DOCKER = """#!/bin/sh
case "$*" in
  "inspect --format {{{{.Id}}}} {{{{.State.Running}}}} "*) shift 3; for id in "$@"; do echo "$id true"; done ;;
  *) exec {docker} "$@" ;;
esac
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # free once closed: connections are refused


def test_a_node_unreachable_over_ssh(tmp_path):
    key = tmp_path / "key"
    key.write_text("not a key\n")
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "vagrant").write_text(FAKE_VAGRANT.format(port=_closed_port(), key=key))
    (fake / "vagrant").chmod(0o755)
    (fake / "docker").write_text(FAKE_DOCKER.format(docker=shutil.which("docker") or "false"))
    (fake / "docker").chmod(0o755)
    for name in ("node1", "node2"):  # the run folder knows of a cluster: Vagrant recorded its nodes
        machine = tmp_path / "run" / ".vagrant" / "machines" / name / "docker"
        machine.mkdir(parents=True)
        (machine / "id").write_text(f"{name}-container\n")
    env = _env(tmp_path, PATH=f"{fake}:{os.environ['PATH']}")
    res = _invoke("provision", env=env)
    line = _assert_one_line(res, "is unreachable over SSH")
    assert line.startswith(("error: node1 (127.0.0.1:", "error: node2 (127.0.0.1:")), line
    assert line.endswith("is the cluster up? run `invoke up`"), line
    # The failed stage still snapshots what the host can see, and says which nodes did not answer.
    summary = tmp_path / "reports" / "artifacts" / "stage-provision" / "SUMMARY.txt"
    assert "is unreachable over SSH" in summary.read_text()


# ---- the command line over all tasks (issue 25: a CLI built once) ---------------------------------
def _namespace() -> Collection:
    """The tasks as `invoke` sees them (tasks.py's own collection, or its functions)."""
    spec = importlib.util.spec_from_file_location("tasks_under_test", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Collection.from_module(module)


NAMESPACE = _namespace()
# Every name a user can type: each task, and each namespace that runs its default (`invoke upgrade`).
TASK_NAMES = sorted({*NAMESPACE.task_names, *(a for aliases in NAMESPACE.task_names.values() for a in aliases)})


def _help(name: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        Program(namespace=NAMESPACE, name="invoke", binary="invoke").run(["invoke", "--help", name], exit=False)
    return out.getvalue()


def test_no_short_flag_means_one_thing_here_and_another_there():
    """Invoke's automatic short flags took each task's first free letter: -e was --etcd in `up`,
    --prefix in `e2e`, --reports-dir in `destroy`. The one short flag kept is -p, --pytest-args
    (README: `invoke verify -p '-k name'`), the same in every task that has it."""
    meaning: dict[str, set[str]] = {}
    for name in NAMESPACE.task_names:
        for arg in NAMESPACE[name].get_arguments():
            for short in (n for n in arg.names if len(n) == 1):
                meaning.setdefault(short, set()).add(arg.name)
    assert meaning == {"p": {"pytest_args"}}


@pytest.mark.parametrize("name", TASK_NAMES)
def test_the_help_of_every_task_is_whole(name):
    text = _help(name)
    assert text.startswith(f"Usage: invoke [--core-opts] {name} "), text[:200]
    docstring = text.split("Docstring:\n", 1)[1].split("\n\n", 1)[0].strip()
    assert docstring and docstring != "none", f"{name} has no docstring"
    options = text.split("Options:\n", 1)[1]
    # A dash taken as a short flag's letter printed `--=STRING, --reports-dir` (e2e before).
    assert not re.search(r"(^|[\s,])--(?![\w\[])", options), options
    entries = [line for line in options.splitlines() if re.match(r"^  -", line)]
    for entry in entries:  # every option says what it does, on its first line
        assert re.match(r"^  -\S.*?\s{2,}\S", entry), f"{name}: no help for {entry.strip()}"


def test_the_box_flavour_is_spelled_os_and_vm_os(tmp_path):
    for flag in ("--os", "--vm-os"):
        res = _invoke("config", "--provider", "libvirt", flag, "debian12", tmp_path=tmp_path)
        assert res.returncode == 0, res.stderr
        row = next(line.split() for line in res.stdout.splitlines() if line.startswith("vm_os "))
        assert row[1:3] == ["debian12", "--os"], row
    assert "--os=STRING, --vm-os=STRING" in _help("e2e")


@pytest.mark.parametrize("old,new,stdout", [
    (["mirror", "--status"], "`invoke mirror --status` is now `invoke mirror.status`", "no mirror in "),
    (["mirror", "--stop"], "`invoke mirror --stop` is now `invoke mirror.stop`", "no mirror in "),
])
def test_an_old_spelling_still_works_and_names_the_new_one(tmp_path, old, new, stdout):
    res = _invoke(*old, tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    assert new in res.stderr and stdout in res.stdout
    plain = _invoke(new.split("`")[3].split()[1], tmp_path=tmp_path)  # the new spelling: no note
    assert plain.returncode == 0 and plain.stderr == "" and stdout in plain.stdout


@pytest.mark.parametrize("old,note,error", [
    (["bench", "--lanes", "1"], "`invoke bench --lanes N` is now `invoke bench.lanes --count N`",
     "--lanes needs at least 2"),
    (["report", "--history", "--last", "0"], "`invoke report --history` is now `invoke report.history`",
     "--last must be 1 or more"),
])
def test_an_old_mode_flag_names_the_new_task_before_its_own_error(tmp_path, old, note, error):
    res = _invoke(*old, tmp_path=tmp_path)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 2, res.stderr
    assert note in lines[0] and error in lines[1]
    _assert_nothing_made(tmp_path)


def test_the_old_upgrade_modes_keep_their_exclusions(tmp_path):
    _assert_one_line(_invoke("upgrade", "--restore", "--etcd", "3.5.16", tmp_path=tmp_path),
                     "--restore drills the running cluster alone: drop the other flags")
    _assert_one_line(_invoke("upgrade", "--dwell", "--docker", "20.10.24", tmp_path=tmp_path),
                     "--dwell and --rollback drill etcd alone")


def test_invoke_config_names_each_source(tmp_path):
    """default, cluster.yaml (changed there), the environment variable, the flag."""
    text = (ROOT / "cluster.yaml").read_text()
    (tmp_path / "cluster.yaml").write_text(text.replace("privileged: auto ", "privileged: true "))
    env = _env(tmp_path, CALICOLAB_CLUSTER_FILE=str(tmp_path / "cluster.yaml"), CALICOLAB_VM_MEMORY="2048")
    res = _invoke("config", "--etcd", "3.5.16", env=env)
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: line.split()[1:] for line in res.stdout.splitlines()[2:] if line.strip()}
    assert rows["privileged"][:2] == ["true", "cluster.yaml"]
    assert rows["resources.memory"][:2] == ["2048", "CALICOLAB_VM_MEMORY"]
    assert rows["versions.etcd"][:2] == ["3.5.16", "--etcd"]
    assert rows["prefix"][:2] == [PREFIX, "CALICOLAB_PREFIX"]
    assert rows["upstream.busybox_image"][:2] == ["busybox", "default"]
    assert rows["versions.docker"][:2] == ["20.10.24", "default"]  # the lab's column (versions.yaml)

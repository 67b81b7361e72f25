"""Bad input on the command line: one line saying what is wrong and what to do, non-zero exit,
no traceback, and nothing half-made left behind (no node container, no network, no Vagrant
dotfile). Every run gets its own prefix, run and reports folders."""

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

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
# Vagrant as seen by the tasks: both nodes running, SSH on a port where nothing listens.
case "$1" in
  status) printf '1,node1,provider-name,docker\\n1,node1,state,running\\n'
          printf '1,node2,provider-name,docker\\n1,node2,state,running\\n' ;;
  ssh-config) printf 'Host %s\\n  HostName 127.0.0.1\\n  User vagrant\\n  Port {port}\\n  IdentityFile {key}\\n' "$2" ;;
  *) echo "fake vagrant cannot $1" >&2; exit 1 ;;
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
    (tmp_path / "run" / ".vagrant").mkdir(parents=True)  # the run folder knows of a cluster
    env = _env(tmp_path, PATH=f"{fake}:{os.environ['PATH']}")
    res = _invoke("provision", env=env)
    line = _assert_one_line(res, "is unreachable over SSH")
    assert line.startswith(("error: node1 (127.0.0.1:", "error: node2 (127.0.0.1:")), line
    assert line.endswith("is the cluster up? run `invoke up`"), line
    # The failed stage still snapshots what the host can see, and says which nodes did not answer.
    summary = tmp_path / "reports" / "artifacts" / "stage-provision" / "SUMMARY.txt"
    assert "is unreachable over SSH" in summary.read_text()


def test_every_task_has_a_docstring_and_help():
    res = _invoke("--list")
    for name in ("setup", "box", "up", "provision", "verify", "destroy", "ssh", "e2e", "bench", "test", "soak"):
        assert f"  {name} " in res.stdout
    help_text = _invoke("--help", "e2e").stdout
    assert "--destroy" in help_text and "always (default)" in help_text
    soak_help = _invoke("--help", "soak").stdout
    assert "--runs" in soak_help and "how many" in soak_help

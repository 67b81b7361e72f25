"""What the run learns from Vagrant without starting it more than needed: every node's SSH
settings from one `vagrant ssh-config`, and on the lab each node's state from Docker."""

from __future__ import annotations

import subprocess

import pytest

from calicolab.core import config, shell
from calicolab.core.errors import UserError
from calicolab.infra import vagrant_env

# `vagrant ssh-config` for a two-machine docker-provider run (Vagrant 2.3.4's layout).
SSH_CONFIG = """Host node1
  HostName 127.0.0.1
  User vagrant
  Port 40143
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile "/tmp/a run/.vagrant/machines/node1/docker/private_key"
  IdentitiesOnly yes
  LogLevel FATAL

Host node2
  HostName 127.0.0.1
  User vagrant
  Port 40144
  IdentityFile /tmp/run/.vagrant/machines/node2/docker/private_key
"""


def _cluster(tmp_path, ids: dict[str, str]) -> vagrant_env.VagrantCluster:
    cfg = config.load({"run_dir": str(tmp_path / "run"), "reports_dir": str(tmp_path / "reports"),
                       "prefix": "vst", "subnet": "192.168.242.0/24"}, environ={})
    for name, cid in ids.items():
        folder = cfg.run_path / ".vagrant" / "machines" / name / "docker"
        folder.mkdir(parents=True)
        (folder / "id").write_text(cid + "\n")
    (cfg.run_path / ".vagrant").mkdir(parents=True, exist_ok=True)
    return vagrant_env.VagrantCluster(cfg)


def test_every_nodes_ssh_settings_come_from_one_ssh_config(tmp_path, monkeypatch):
    cluster = _cluster(tmp_path, {})
    calls: list[object] = []

    def ssh_config(vm_name=None):
        calls.append(vm_name)
        return SSH_CONFIG

    monkeypatch.setattr(cluster.v, "ssh_config", ssh_config)
    targets = cluster.ssh_targets()
    assert calls == [None]  # one Vagrant start for both nodes
    assert (targets["node1"].port, targets["node2"].port) == (40143, 40144)
    assert targets["node1"].user == "vagrant" and targets["node1"].host == "127.0.0.1"
    assert targets["node1"].key_file == "/tmp/a run/.vagrant/machines/node1/docker/private_key"


@pytest.mark.parametrize("output", [SSH_CONFIG.split("Host node2")[0], ""])
def test_a_node_missing_from_ssh_config_is_one_clear_error(tmp_path, monkeypatch, output):
    cluster = _cluster(tmp_path, {})
    monkeypatch.setattr(cluster.v, "ssh_config", lambda vm_name=None: output)
    with pytest.raises(UserError, match="no SSH configuration: is the cluster up"):
        cluster.ssh_targets()


def test_ssh_config_failing_is_one_clear_error(tmp_path, monkeypatch):
    cluster = _cluster(tmp_path, {})

    def fails(vm_name=None):
        raise subprocess.CalledProcessError(1, ["vagrant", "ssh-config"])

    monkeypatch.setattr(cluster.v, "ssh_config", fails)
    with pytest.raises(UserError, match="run `invoke up`"):
        cluster.ssh_targets()


def test_the_labs_node_states_come_from_the_recorded_containers(tmp_path, monkeypatch):
    cluster = _cluster(tmp_path, {"node1": "aaa", "node2": "bbb"})
    seen: list[list[str]] = []

    def run(cmd, check=True, timeout=600, **_kw):
        seen.append(list(cmd))
        # node2's container is gone (removed by hand): Docker answers for node1 only.
        return shell.Outcome(tuple(cmd), 1, "aaa false\n", "Error: No such object: bbb\n")

    monkeypatch.setattr(vagrant_env.shell, "run", run)
    monkeypatch.setattr(cluster.v, "status", lambda: pytest.fail("vagrant status on the lab"))
    assert cluster.status() == {"node1": "stopped", "node2": "not_created"}
    assert seen == [["docker", "inspect", "--format", "{{.Id}} {{.State.Running}}", "aaa", "bbb"]]
    assert not cluster.is_running()


def test_the_lab_is_running_only_when_every_recorded_container_runs(tmp_path, monkeypatch):
    cluster = _cluster(tmp_path, {"node1": "aaa", "node2": "bbb"})
    monkeypatch.setattr(vagrant_env.shell, "run",
                        lambda cmd, **_kw: shell.Outcome(tuple(cmd), 0, "aaa true\nbbb true\n", ""))
    assert cluster.is_running()
    (cluster.dotfile / "machines" / "node2" / "docker" / "id").unlink()  # never created
    assert cluster.status()["node2"] == "not_created" and not cluster.is_running()


# Vagrant 2.3.4's stderr when one machine's `up` raised a non-Vagrant error inside the batch
# action (the layout of templates/locales/en.yml's batch_unexpected_error) and the other a
# Vagrant error (batch_vagrant_error).
BATCH_STDERR = """An unexpected error occurred when executing the action on the
'node1' machine. Please report this as a bug:

Call to virNetworkCreate failed: internal error: Network is already in use by interface br-0a1b

/usr/share/rubygems-integration/all/gems/fog-libvirt-0.8.0/lib/fog/libvirt/create_network.rb:5:in `create'
/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/lib/vagrant/machine.rb:203:in `call'
/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/lib/vagrant/machine.rb:203:in `action'
/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/lib/vagrant/batch_action.rb:86:in `block (2 levels) in run'

An error occurred while executing the action on the 'node2'
machine. Please handle this error then try again:

The box 'calicolab/debian12' could not be found.
"""


def test_a_batch_failure_names_each_machines_message_not_the_backtrace() -> None:
    said = vagrant_env.vagrant_failure(BATCH_STDERR)
    assert said == ("node1: Call to virNetworkCreate failed: internal error: Network is already in use by "
                    "interface br-0a1b; node2: The box 'calicolab/debian12' could not be found."), said
    assert "batch_action.rb" not in said


def test_other_failures_keep_their_last_lines_without_backtrace() -> None:
    text = ("Bringing machine 'node1' up with 'libvirt' provider...\nsomething broke (RuntimeError)\n"
            "\tfrom /usr/lib/ruby/3.1.0/x.rb:3:in `y'\n")
    assert vagrant_env.vagrant_failure(text) == "Bringing machine 'node1' up with 'libvirt' provider... " \
                                                 "something broke (RuntimeError)"

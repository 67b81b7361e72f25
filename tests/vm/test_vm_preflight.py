"""Preflight for the VM providers: parsing fed with text, and the checks with a faked host."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess

import pytest

from calicolab.core import config, shell
from calicolab.core.errors import UserError
from calicolab.infra import libvirt_host, vm_preflight
from calicolab.stack import parsers

SUBNET = "192.168.223.0/24"


def ip_json(*links: tuple[str, str, int]) -> str:
    return json.dumps([{"ifindex": i, "ifname": name, "addr_info": [
        {"family": "inet", "local": addr, "prefixlen": plen, "scope": "global"},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]}
        for i, (name, addr, plen) in enumerate(links, start=1)])


def vm_config(provider: str, etcd: str = "3.3.11") -> config.ClusterConfig:
    return config.load({"provider": provider, "etcd": etcd, "docker": "20.10.21"}, environ={})


# ---- networks.conf ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "allowed"), [
    (None, False),                                          # absent: 192.168.56.0/21 only
    ("* 192.168.223.0/24\n", True),
    ("* 0.0.0.0/0 ::/0\n", True),
    ("# lab networks\n* 10.0.0.0/8 192.168.0.0/16\n", True),
    ("* 192.168.56.0/21\n", False),
    ("* 192.168.223.0/25\n", False),                        # only half the subnet
    ("192.168.223.0/24\n", False),                          # no leading '*': not a range line
    ("* not-a-net 192.168.223.0/24\n", True),               # bad entries are skipped
    ("* ::/0\n", False),                                    # IPv6 only
    ("", False),
], ids=["absent", "exact", "everything", "wider", "default-range", "half", "no-star", "bad-entry",
        "ipv6-only", "empty"])
def test_networks_conf_variants(text, allowed):
    assert vm_preflight.vbox_allows(SUBNET, text) is allowed


def test_absent_file_allows_virtualbox_default_range():
    assert vm_preflight.vbox_allows("192.168.56.0/24", None)


def test_networks_conf_check_reads_the_file(tmp_path):
    cfg = vm_config("virtualbox")
    conf = tmp_path / "networks.conf"
    with pytest.raises(UserError, match=r"is missing .*add the line `\* 192.168.223.0/24`"):
        vm_preflight.check_networks_conf(cfg, (7, 0, 14), conf)
    conf.write_text("* 192.168.56.0/21\n")
    with pytest.raises(UserError, match="does not allow it"):
        vm_preflight.check_networks_conf(cfg, (6, 1, 28), conf)
    vm_preflight.check_networks_conf(cfg, (6, 1, 26), conf)   # before 6.1.28: no restriction
    conf.write_text("* 192.168.223.0/24\n")
    vm_preflight.check_networks_conf(cfg, (7, 0, 14), conf)


# ---- host interfaces ----------------------------------------------------------------------

def test_no_conflict_on_a_plain_host():
    text = ip_json(("lo", "127.0.0.1", 8), ("eth0", "10.0.2.15", 24), ("docker0", "172.17.0.1", 16))
    assert vm_preflight.conflicting_addresses(text, SUBNET, "virtualbox") == []


def test_lab_bridge_on_the_subnet_conflicts():
    text = ip_json(("eth0", "10.0.2.15", 24), ("br-4f2a1c", "192.168.223.1", 24))
    (clash,) = vm_preflight.conflicting_addresses(text, SUBNET, "virtualbox")
    assert (clash.ifname, clash.address) == ("br-4f2a1c", "192.168.223.1")


def test_wider_host_network_covering_the_subnet_conflicts():
    text = ip_json(("wlan0", "192.168.1.20", 16))
    assert vm_preflight.conflicting_addresses(text, SUBNET, "libvirt")


@pytest.mark.parametrize(("provider", "ifname", "own", "conflict"), [
    ("virtualbox", "vboxnet0", (), False), ("virtualbox", "virbr1", (), True),
    ("libvirt", "virbr1", ("virbr1",), False),   # this run's own network, brought up again
    ("libvirt", "virbr1", (), True),             # another run's libvirt network on the subnet
    ("libvirt", "virbr10", ("virbr1",), True),   # names are compared whole, not by prefix
    ("libvirt", "vboxnet0", (), True),
])
def test_only_this_runs_interface_is_reused_not_a_conflict(provider, ifname, own, conflict):
    text = ip_json((ifname, "192.168.223.1", 24))
    assert bool(vm_preflight.conflicting_addresses(text, SUBNET, provider, frozenset(own))) is conflict


def test_another_libvirt_runs_management_bridge_is_refused_before_up(monkeypatch):
    """A VM run left up holds its management subnet on a virbr bridge; libvirt then refuses this
    run's management network and `vagrant up` died with a backtrace. Preflight names it."""
    cfg = vm_config("libvirt")
    mgmt = ipaddress.ip_network(libvirt_host.management_subnet(cfg))
    text = ip_json(("virbr3", str(mgmt.network_address + 1), 24))
    monkeypatch.setattr(shell, "run", lambda cmd, **kw: shell.Outcome(tuple(cmd), 0, text, ""))
    monkeypatch.setattr(libvirt_host, "own_bridges", lambda _cfg: set())
    with pytest.raises(UserError) as err:
        vm_preflight.check_subnet_free(cfg)
    assert str(err.value).startswith(f"host interface virbr3 already has {mgmt.network_address + 1}/24 on the "
                                     f"management subnet {mgmt}"), err.value
    monkeypatch.setattr(libvirt_host, "own_bridges", lambda _cfg: {"virbr3"})  # this run's own: reused
    vm_preflight.check_subnet_free(cfg)


def test_parses_this_hosts_ip_addr():
    if not shutil.which("ip"):
        pytest.skip("iproute2 is not installed")
    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("this iproute2 has no JSON output")
    assert any(a.address == "127.0.0.1" for a in parsers.ip_json_addresses(out.stdout))


def test_subnet_check_message(monkeypatch):
    text = ip_json(("br-4f2a1c", "192.168.223.1", 24))
    monkeypatch.setattr(shell, "run", lambda cmd, **kw: shell.Outcome(tuple(cmd), 0, text, ""))
    with pytest.raises(UserError) as err:
        vm_preflight.check_subnet_free(vm_config("virtualbox"))
    assert str(err.value).startswith("host interface br-4f2a1c already has 192.168.223.1/24")
    assert "\n" not in str(err.value)


# ---- providers ----------------------------------------------------------------------------

def test_vbox_version_parsing():
    assert vm_preflight.parse_vbox_version("7.0.14r161095\n") == (7, 0, 14)
    assert vm_preflight.parse_vbox_version("6.1.50_Ubuntur161033") == (6, 1, 50)
    assert vm_preflight.parse_vbox_version("WARNING: The vboxdrv kernel module is not loaded.") is None


def test_vagrant_plugin_list_parsing():
    listing = "vagrant-libvirt (0.11.2, system)\nvagrant-vbguest (0.31.0, global)\n"
    assert vm_preflight.plugin_listed(listing, "vagrant-libvirt")
    assert not vm_preflight.plugin_listed("vagrant-libvirt-foo (1.0, global)\n", "vagrant-libvirt")
    assert not vm_preflight.plugin_listed("No plugins installed.\n", "vagrant-libvirt")


def test_broken_virtualbox_is_one_line(monkeypatch):
    monkeypatch.setattr(shell, "which_or_none", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(shell, "run", lambda cmd, **kw: shell.Outcome(
        tuple(cmd), 1, "", "WARNING: The vboxdrv kernel module is not loaded.\n"))
    with pytest.raises(UserError, match="VBoxManage --version` does not work") as err:
        vm_preflight.preflight(vm_config("virtualbox"))
    assert "\n" not in str(err.value)


def test_libvirt_without_the_plugin(monkeypatch, tmp_path):
    monkeypatch.setattr(shell, "which_or_none", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(shell, "run", lambda cmd, **kw: shell.Outcome(tuple(cmd), 0, "No plugins installed.\n", ""))
    monkeypatch.setattr(vm_preflight, "KVM_DEVICE", tmp_path)   # exists
    with pytest.raises(UserError, match="vagrant-libvirt plugin is not installed"):
        vm_preflight.check_libvirt()


def test_docker_provider_has_no_vm_preflight(monkeypatch):
    monkeypatch.setattr(shell, "run", lambda *a, **k: pytest.fail("no command expected"))
    vm_preflight.preflight(config.load({"provider": "docker"}, environ={}))


@pytest.mark.parametrize(("provider", "tool"), [("virtualbox", "VBoxManage"), ("libvirt", "virsh")])
def test_on_this_host_a_missing_provider_stops_preflight(provider, tool, monkeypatch):
    """The 'done when' case: without the provider, preflight ends with one clear line."""
    real_which = shell.which_or_none
    monkeypatch.setattr(shell, "which_or_none", lambda name: None if name == tool else real_which(name))
    with pytest.raises(UserError) as err:
        vm_preflight.preflight(vm_config(provider))
    assert tool in str(err.value) and "\n" not in str(err.value)

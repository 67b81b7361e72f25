"""Preflight: a subnet already on a host interface is found; the lab's own bridge is not; every
artifact a run uses is checked against pins and the lock before any box or node exists."""

import json

import pytest
from fake_registry import MANIFEST, Served, manifest, serving

from calicolab.core import config
from calicolab.core.errors import UserError
from calicolab.core.polling import Timeout, wait_for
from calicolab.infra import preflight, vm_preflight
from calicolab.runs.lifecycle import Lifecycle
from calicolab.stack import downloads, parsers, upstream


def _ip_json(name, cidr):
    addr, plen = cidr.split("/")
    return json.dumps([{"ifname": name, "addr_info": [{"family": "inet", "local": addr, "prefixlen": int(plen)}]}])


def test_subnet_conflict_found_and_own_bridge_ignored():
    cfg = config.load(environ={})
    ifaces = parsers.ip_json_addresses(_ip_json("vboxnet0", "192.168.223.1/24"))
    assert preflight.subnet_conflict(cfg, ifaces) == "vboxnet0 (192.168.223.1/24)"
    assert preflight.subnet_conflict(cfg, ifaces, own={"vboxnet0"}) is None
    assert preflight.subnet_conflict(cfg, parsers.ip_json_addresses(_ip_json("eth0", "10.0.0.2/8"))) is None


def test_wait_for_returns_when_true_and_times_out_with_last_value():
    values = iter([1, 2, 3])
    assert wait_for(lambda: next(values), lambda v: v == 3, "three", timeout=5, interval=0.01) == 3
    try:
        wait_for(lambda: "Active", lambda v: v == "Established", "bgp", timeout=0.05, interval=0.01)
    except Timeout as err:
        assert err.last == "Active" and "bgp" in str(err)
    else:
        raise AssertionError("no timeout")


def test_unreachable_node_is_one_line(tmp_path):
    import pytest

    from calicolab.core.errors import UserError
    from calicolab.core.remote import Node, SshTarget

    key = tmp_path / "key"
    key.write_text("not a key")
    node = Node(SshTarget("node1", "127.0.0.1", 1, "vagrant", str(key)), "192.168.223.131", connect_timeout=2)
    with pytest.raises(UserError, match=r"node1 \(127.0.0.1:1\) is unreachable over SSH .*run `invoke up`"):
        node.run("true")


# ---- artifacts: checked against pins and the lock before any box or node exists ---------------

def _strict_vm(tmp_path, reg: str, base: str, lock_file) -> config.ClusterConfig:
    host = reg.removeprefix("http://")
    return config.load({"run_dir": str(tmp_path / "run"), "reports_dir": str(tmp_path / "reports"),
                        "provider": "libvirt", "etcd": "3.3.11", "docker": "20.10.24", "calico_source": "upstream",
                        "strict_artifacts": "true", "calico_node_image": f"{host}/calico/node",
                        "busybox_image": f"{host}/library/busybox", "insecure_registry": host,
                        "download_base": base, "lock_file": str(lock_file)}, environ={})


def test_strict_preflight_refuses_an_unlocked_image_before_the_box_stage(tmp_path, monkeypatch):
    """The lock holds calicoctl but not the images: the old preflight let the run build the box
    and refused the image only when a node pulled it; now `up` stops before box()."""
    served = Served(manifests={("calico/node", "v2.6.1"): (MANIFEST, manifest(b"node")),
                               ("library/busybox", "latest"): (MANIFEST, manifest(b"busybox"))},
                    files={"/projectcalico/calicoctl/releases/download/v1.6.1/calicoctl": b"calicoctl"})
    monkeypatch.setattr(vm_preflight, "preflight", lambda _cfg: None)  # no libvirt needed for this
    lock_file = tmp_path / "artifacts.lock"
    with serving(served) as reg, serving(served) as base:
        cfg = _strict_vm(tmp_path, reg, base, lock_file)
        half = downloads.Lock.load(lock_file)
        half.record(downloads.calicoctl_binary("v1.6.1", base), "a" * 64)
        built: list[str] = []

        def box() -> None:
            built.append("box")
            raise _AfterBox

        def lifecycle() -> Lifecycle:
            life = Lifecycle(cfg, say=lambda _m: None)
            monkeypatch.setattr(life.vagrant, "is_running", lambda: False)
            monkeypatch.setattr(life, "box", box)
            return life

        with pytest.raises(UserError) as err:
            lifecycle().up()
        assert built == [] and "\n" not in str(err.value)
        image = f"image {reg.removeprefix('http://')}/calico/node:v2.6.1"
        assert f"{image} is neither pinned nor locked" in str(err.value)
        assert "invoke lock --record" in str(err.value)
        # Recorded against the same registry (`invoke lock --record`'s code), preflight passes: the box is next.
        upstream.record_lock(cfg, lock_file)
        with pytest.raises(_AfterBox):
            lifecycle().up()
        assert built == ["box"]


class _AfterBox(Exception):
    """Raised by the stand-in box stage: preflight passed, nothing is built in a unit test."""

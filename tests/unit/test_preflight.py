"""Preflight: a subnet already on a host interface is found; the lab's own bridge is not."""

import json

from calicolab.core import config
from calicolab.core.polling import Timeout, wait_for
from calicolab.infra import preflight
from calicolab.stack import parsers


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

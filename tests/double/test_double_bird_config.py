"""BIRD configuration rendered by the Calico double."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from calico_double.agent.bird_config import (
    BirdInputs,
    Peer,
    gather_inputs,
    protocol_name,
    render_aggr,
    render_all,
    render_ipam,
    render_main,
    write_config,
)

NODE1 = IPv4Address("192.168.223.131")
NODE2 = IPv4Address("192.168.223.130")
OWN_BLOCK = IPv4Network("192.168.166.128/26")


def inputs(**overrides: object) -> BirdInputs:
    values: dict = {
        "node": "node1", "router_id": NODE1, "as_num": 64512, "mesh_enabled": True,
        "peers": (Peer("node2", NODE2, 64512),), "own_blocks": (OWN_BLOCK,),
        "pools": (IPv4Network("192.168.0.0/16"),),
    }
    values.update(overrides)
    return BirdInputs(**values)


def seed_cluster(etcd) -> None:
    etcd.put("/calico/bgp/v1/global/as_num", "64512")
    etcd.put("/calico/bgp/v1/global/node_mesh", json.dumps({"enabled": True}))
    etcd.put("/calico/bgp/v1/host/node1/ip_addr_v4", str(NODE1))
    etcd.put("/calico/bgp/v1/host/node2/ip_addr_v4", str(NODE2))
    etcd.put("/calico/bgp/v1/host/node2/as_num", "65001")
    etcd.put("/calico/bgp/v1/host/node3/ip_addr_v4", "")  # registered without an address yet
    etcd.put("/calico/ipam/v2/host/node1/ipv4/block/192.168.166.128-26", "{}")
    etcd.put("/calico/ipam/v2/host/node2/ipv4/block/192.168.104.0-26", "{}")
    etcd.put("/calico/v1/ipam/v4/pool/192.168.0.0-16", json.dumps({"cidr": "192.168.0.0/16"}))


def test_gather_inputs_excludes_self_and_reads_as_numbers(etcd) -> None:
    seed_cluster(etcd)
    got = gather_inputs(etcd, "node1", NODE1)
    assert got.peers == (Peer("node2", NODE2, 65001),)
    assert got.as_num == 64512
    assert got.own_blocks == (OWN_BLOCK,)
    assert got.pools == (IPv4Network("192.168.0.0/16"),)
    assert got.mesh_enabled


def test_node_as_overrides_global_as(etcd) -> None:
    seed_cluster(etcd)
    etcd.put("/calico/bgp/v1/host/node1/as_num", "64999")
    assert gather_inputs(etcd, "node1", NODE1).as_num == 64999


def test_protocol_name_encodes_peer_address() -> None:
    assert protocol_name("Mesh", NODE2) == "Mesh_192_168_223_130"


def test_main_config_has_router_id_and_one_session_per_other_node() -> None:
    text = render_main(inputs(), Path("/etc/calico/confd/config"))
    assert "router id 192.168.223.131;" in text
    assert "protocol bgp Mesh_192_168_223_130 from bgp_template {" in text
    assert "  neighbor 192.168.223.130 as 64512;" in text
    assert "Mesh_192_168_223_131" not in text
    assert "source address 192.168.223.131;" in text
    assert "next hop self;" in text
    assert "export filter calico_pools;" in text
    # The templates leave BGP timers at BIRD's defaults (connect retry 120 s, error wait 60/300).
    assert "connect retry" not in text and "error wait" not in text
    assert "export filter calico_ipip;" in text
    assert 'interface -"cali*", "*";' in text
    for line in ("learn;", "persist;", "scan time 2;", "import all;", "graceful restart;"):
        assert line in text
    assert 'include "/etc/calico/confd/config/bird_aggr.cfg";' in text


def test_mesh_disabled_renders_no_sessions() -> None:
    text = render_main(inputs(mesh_enabled=False), Path("/x"))
    assert "protocol bgp Mesh_" not in text
    assert "# Node-to-node mesh disabled" in text


def test_log_level_controls_debug() -> None:
    assert "debug { states };" in render_main(inputs(), Path("/x"))
    assert "debug all;" in render_main(inputs(log_level="debug"), Path("/x"))
    assert "debug" not in render_main(inputs(log_level="none"), Path("/x")).replace("# ", "")


def test_aggr_blackholes_own_blocks_and_aggregates_them() -> None:
    text = render_aggr(inputs())
    assert "   route 192.168.166.128/26 blackhole;" in text
    assert "  if ( net = 192.168.166.128/26 ) then { accept; }" in text
    assert "  if ( net ~ 192.168.166.128/26 ) then { reject; }" in text


def test_aggr_without_blocks() -> None:
    text = render_aggr(inputs(own_blocks=()))
    assert "protocol static" not in text
    assert "# No static routes configured." in text
    assert "function calico_aggr ()" in text


def test_pool_filter_exports_pool_routes_only() -> None:
    text = render_ipam(inputs())
    # bird_ipam.cfg.template@v2.6.1: the block aggregate, the custom filters, then each pool.
    assert ("filter calico_pools {\n  calico_aggr();\n  custom_filters();\n"
            "  if ( net ~ 192.168.0.0/16 ) then {\n    accept;\n  }\n  reject;\n}") in text
    assert "filter calico_ipip {" in text


def test_mesh_peers_in_host_name_order(etcd) -> None:
    # confd's lsdir walks /calico/bgp/v1/host in name order, not address order.
    etcd.put("/calico/bgp/v1/global/as_num", "64512")
    etcd.put("/calico/bgp/v1/host/node1/ip_addr_v4", str(NODE1))
    etcd.put("/calico/bgp/v1/host/alpha/ip_addr_v4", "192.168.223.200")
    etcd.put("/calico/bgp/v1/host/node2/ip_addr_v4", str(NODE2))
    got = gather_inputs(etcd, "node1", NODE1)
    assert [p.node for p in got.peers] == ["alpha", "node2"]
    text = render_main(got, Path("/x"))
    assert text.index("Mesh_192_168_223_200") < text.index("Mesh_192_168_223_130")


def test_bird6_config_without_ipv6_has_no_sessions() -> None:
    text = render_all(inputs(), Path("/x"))["bird6.cfg"]
    assert "router id 192.168.223.131;" in text  # bird6 uses the IPv4 router id too
    assert "# IPv6 disabled on this node." in text
    assert "protocol bgp" not in text


def test_bird6_config_with_ipv6_peers() -> None:
    from ipaddress import IPv6Address
    data = inputs(ip6=IPv6Address("fd00::131"), peers6=(Peer("node2", IPv6Address("fd00::130"), 64512),))
    text = render_all(data, Path("/x"))["bird6.cfg"]
    assert "source address fd00::131;" in text
    assert "protocol bgp Mesh_fd00__130 from bgp_template {" in text


def test_write_config_reports_changes_only(tmp_path: Path) -> None:
    files = render_all(inputs(), tmp_path)
    assert write_config(files, tmp_path) is True
    assert write_config(files, tmp_path) is False
    assert (tmp_path / "bird.cfg").read_text() == files["bird.cfg"]


DOUBLE_IMAGE = "calicolab/calico-node-double:v2.6.1"


def _bird_parser() -> list[str] | None:
    """`bird -p` on the host, else inside the double image (the BIRD that will read the files)."""
    if shutil.which("bird"):
        return []
    if shutil.which("docker") and subprocess.run(["docker", "image", "inspect", DOUBLE_IMAGE],
                                                 capture_output=True, check=False).returncode == 0:
        return ["docker", "run", "--rm", "-v", "{dir}:{dir}:ro", "--entrypoint", "sh", DOUBLE_IMAGE, "-c"]
    return None


@pytest.mark.parametrize("variant", ["full", "empty", "ipv6"])
def test_bird_accepts_the_config(tmp_path: Path, variant: str) -> None:
    from ipaddress import IPv6Address
    wrapper = _bird_parser()
    if wrapper is None:
        pytest.skip(f"needs BIRD: `bird` on the host or the image {DOUBLE_IMAGE} (invoke box)")
    data = {"full": inputs(), "empty": inputs(peers=(), own_blocks=(), pools=()),
            "ipv6": inputs(ip6=IPv6Address("fd00::131"),
                           peers6=(Peer("node2", IPv6Address("fd00::130"), 64512),),
                           pools6=(ipaddress.IPv6Network("fd80:24e2:f998:72d6::/64"),))}[variant]
    write_config(render_all(data, tmp_path), tmp_path)
    script = f"bird -p -c {tmp_path}/bird.cfg && bird6 -p -c {tmp_path}/bird6.cfg"
    argv = [a.format(dir=tmp_path) for a in wrapper] + [script] if wrapper else ["sh", "-c", script]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr + result.stdout


def test_bird_control_reply_parsing() -> None:
    import io

    from calico_double.agent.bird_daemon import read_reply

    reply = read_reply(io.BytesIO(b"0002-Reading configuration from /etc/bird.cfg\n0003 Reconfigured\n"))
    assert reply.code == 3 and reply.lines == ["Reading configuration from /etc/bird.cfg", "Reconfigured"]
    error = read_reply(io.BytesIO(b"8002 /etc/bird.cfg, line 3: syntax error\n"))
    assert error.code == 8002

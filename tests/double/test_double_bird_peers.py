"""Global and node-specific BGP peers and the per-node BGP log level in the double's bird.cfg.

Expected text is the template's: projectcalico/calico@v2.6.1
calico_node/filesystem/etc/calico/confd/templates/bird.cfg.mesh.template:9-15 (LOGGING: the
host's /host/<node>/loglevel, else /global/loglevel, "debug" -> `debug all;`, "none" ->
nothing, anything else -> `debug { states };`), :77-86 (global peers, `gets` in key order,
`# For peer {{.Key}}`, `protocol bgp Global_<ip with _>`, `neighbor <ip> as <as_num>;`) and
:89-98 (node-specific peers, `Node_`); bird6.cfg.mesh.template splits IPv6 on ":".
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

from calico_double.agent.bird_config import gather_inputs, render_main, render_main6

NODE1 = IPv4Address("192.168.223.131")


def seed(etcd) -> None:
    etcd.put("/calico/bgp/v1/global/as_num", "64512")
    etcd.put("/calico/bgp/v1/global/node_mesh", json.dumps({"enabled": True}))
    etcd.put("/calico/bgp/v1/global/loglevel", "info")
    etcd.put("/calico/bgp/v1/host/node1/ip_addr_v4", str(NODE1))
    etcd.put("/calico/bgp/v1/host/node2/ip_addr_v4", "192.168.223.130")


def block(kind: str, key: str, ip: str, as_num: int, sep: str = ".") -> str:
    return (f"# For peer {key}\nprotocol bgp {kind}_{'_'.join(ip.split(sep))} from bgp_template {{\n"
            f"  neighbor {ip} as {as_num};\n}}\n")


def test_global_and_node_specific_peers_are_rendered(etcd) -> None:
    seed(etcd)
    # libcalico-go v1.7.1 stores a peer as {"ip": ..., "as_num": ...} under its address.
    etcd.put("/calico/bgp/v1/global/peer_v4/10.0.0.9", json.dumps({"ip": "10.0.0.9", "as_num": 64600}))
    etcd.put("/calico/bgp/v1/global/peer_v4/10.0.0.10", json.dumps({"ip": "10.0.0.10", "as_num": 64601}))
    etcd.put("/calico/bgp/v1/host/node1/peer_v4/172.16.0.1", json.dumps({"ip": "172.16.0.1", "as_num": 65000}))
    etcd.put("/calico/bgp/v1/host/node2/peer_v4/172.16.0.2", json.dumps({"ip": "172.16.0.2", "as_num": 65001}))
    text = render_main(gather_inputs(etcd, "node1", NODE1), Path("/x"))
    global_part = text.split("# ------------- Global peers -------------\n", 1)[1].split("# ---", 1)[0]
    # `gets` returns keys in string order: 10.0.0.10 before 10.0.0.9.
    assert global_part.strip("\n") == (block("Global", "/global/peer_v4/10.0.0.10", "10.0.0.10", 64601) + "\n"
                                       + block("Global", "/global/peer_v4/10.0.0.9", "10.0.0.9", 64600)).strip("\n")
    node_part = text.split("# ------------- Node-specific peers -------------\n", 1)[1]
    assert node_part.strip("\n") == block("Node", "/host/node1/peer_v4/172.16.0.1", "172.16.0.1", 65000).strip("\n")
    assert "No global peers configured" not in text and "No node-specific peers configured" not in text
    assert "172.16.0.2" not in text  # node2's own peer is node2's business
    # The mesh is unchanged: node2 is still a Mesh_ peer.
    assert "protocol bgp Mesh_192_168_223_130 from bgp_template {" in text


def test_no_peers_keeps_the_templates_placeholders(etcd) -> None:
    seed(etcd)
    text = render_main(gather_inputs(etcd, "node1", NODE1), Path("/x"))
    assert "# ------------- Global peers -------------\n# No global peers configured." in text
    assert "# ------------- Node-specific peers -------------\n# No node-specific peers configured." in text


def test_ipv6_peers_split_on_colons(etcd) -> None:
    seed(etcd)
    etcd.put("/calico/bgp/v1/host/node1/ip_addr_v6", "fd00::1")
    etcd.put("/calico/bgp/v1/global/peer_v6/fd00::99", json.dumps({"ip": "fd00::99", "as_num": 64600}))
    text = render_main6(gather_inputs(etcd, "node1", NODE1), Path("/x"))
    assert block("Global", "/global/peer_v6/fd00::99", "fd00::99", 64600, ":") in text


def debug_lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip().startswith("debug")}


def test_the_nodes_bgp_log_level_wins_over_the_global_one(etcd) -> None:
    seed(etcd)
    assert debug_lines(render_main(gather_inputs(etcd, "node1", NODE1), Path("/x"))) == {"debug { states };"}
    etcd.put("/calico/bgp/v1/host/node1/loglevel", "debug")
    assert debug_lines(render_main(gather_inputs(etcd, "node1", NODE1), Path("/x"))) == {"debug all;"}
    etcd.put("/calico/bgp/v1/global/loglevel", "debug")
    etcd.put("/calico/bgp/v1/host/node1/loglevel", "none")
    assert debug_lines(render_main(gather_inputs(etcd, "node1", NODE1), Path("/x"))) == set()
    # Another node's level is not ours.
    etcd.put("/calico/bgp/v1/host/node1/loglevel", "info")
    etcd.put("/calico/bgp/v1/host/node2/loglevel", "none")
    assert debug_lines(render_main(gather_inputs(etcd, "node1", NODE1), Path("/x"))) == {"debug { states };"}

"""The calicoctl double: BIRD parsing, the node status table, endpoint discovery."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import socket
import threading
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "calico_double" / "calicoctl"


def load_calicoctl() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("calicoctl_double", str(SCRIPT))
    spec = importlib.util.spec_from_loader("calicoctl_double", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


ctl = load_calicoctl()

# Control-socket output as BIRD 1.6.8 sent it in the double's two-node test.
ESTABLISHED = [
    "0001 BIRD 1.6.8 ready.",
    "2002-name     proto    table    state  since       info",
    "1002-static1  Static   master   up     09:31:10    ",
    " kernel1  Kernel   master   up     09:31:10    ",
    " device1  Device   master   up     09:31:10    ",
    " direct1  Direct   master   up     09:31:10    ",
    " Mesh_192_168_223_130 BGP      master   up     09:31:18    Established   ",
    "0000 ",
]
NOT_ESTABLISHED = [
    "0001 BIRD 1.6.8 ready.",
    "2002-name     proto    table    state  since       info",
    "1002-kernel1  Kernel   master   up     19:56:10    ",
    " Mesh_10_99_0_130 BGP      master   start  19:56:21    Connect       Received: Administrative shutdown",
    " Global_10_0_0_1 BGP      master   start  19:56:21    Active        Socket: Connection refused",
    " Node_10_0_0_2 BGP      master   start  19:56:21    Idle",
    "0000 ",
]

EXPECTED_STATUS = """Calico process is running.

IPv4 BGP status
+-----------------+-------------------+-------+----------+-------------+
|  PEER ADDRESS   |     PEER TYPE     | STATE |  SINCE   |    INFO     |
+-----------------+-------------------+-------+----------+-------------+
| 192.168.223.130 | node-to-node mesh | up    | 09:31:18 | Established |
+-----------------+-------------------+-------+----------+-------------+

IPv6 BGP status
No IPv6 peers found.

"""


def test_node_status_matches_calicoctl_layout() -> None:
    assert ctl.render_node_status(ctl.parse_bird_protocols(ESTABLISHED)) == EXPECTED_STATUS


def test_peer_types_and_detail_for_sessions_not_established() -> None:
    peers = ctl.parse_bird_protocols(NOT_ESTABLISHED)
    assert [(p["peer"], p["type"], p["state"], p["info"]) for p in peers] == [
        ("10.99.0.130", "node-to-node mesh", "start", "Connect Received: Administrative shutdown"),
        ("10.0.0.1", "global", "start", "Active Socket: Connection refused"),
        ("10.0.0.2", "node specific", "start", "Idle"),
    ]
    table = ctl.render_node_status(peers)
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines() if line.startswith("|")]
    want = ["10.99.0.130", "node-to-node mesh", "start", "19:56:21", "Connect Received: Administrative shutdown"]
    assert want in rows
    widths = {len(line) for line in table.splitlines() if line.startswith(("|", "+"))}
    assert len(widths) == 1  # every table line has the same width


def test_birdc_human_output_parses_too() -> None:
    lines = ["BIRD 1.6.8 ready.", "name     proto    table    state  since       info",
             "Mesh_192_168_223_131 BGP      master   up     10:29:48    Established"]
    assert ctl.parse_bird_protocols(lines)[0]["peer"] == "192.168.223.131"


def test_no_peers_message() -> None:
    text = ctl.render_node_status([])
    assert "IPv4 BGP status\nNo IPv4 peers found.\n" in text


def test_unknown_bird_headings_are_an_error() -> None:
    with pytest.raises(ctl.CalicoctlError):
        ctl.parse_bird_protocols(["2002-name proto something"])


def test_not_running_exits_1(monkeypatch, capsys) -> None:
    monkeypatch.setattr(ctl.os, "geteuid", lambda: 0)
    monkeypatch.setattr(ctl, "calico_process_running", lambda: False)
    assert ctl.node_status() == 1
    assert capsys.readouterr().out == "Calico process is not running.\n"


def test_missing_bird_socket_means_not_running(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setattr(ctl.os, "geteuid", lambda: 0)
    monkeypatch.setattr(ctl, "calico_process_running", lambda: True)
    monkeypatch.setattr(ctl, "BIRD_SOCKETS", (str(tmp_path / "bird.ctl"),))
    assert ctl.node_status() == 1
    assert "Calico process is not running." in capsys.readouterr().out


def test_requires_root(monkeypatch, capsys) -> None:
    monkeypatch.setattr(ctl.os, "geteuid", lambda: 1000)
    assert ctl.node_status() == 1
    assert "must be run as root" in capsys.readouterr().out


def fake_bird(path: Path, reply: list[str]) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            assert conn.recv(100) == b"show protocols\n"
            conn.sendall(("\n".join(reply) + "\n").encode())
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_node_status_over_a_bird_socket(monkeypatch, capsys, tmp_path) -> None:
    sock = tmp_path / "bird.ctl"
    thread = fake_bird(sock, ESTABLISHED)
    monkeypatch.setattr(ctl.os, "geteuid", lambda: 0)
    monkeypatch.setattr(ctl, "calico_process_running", lambda: True)
    monkeypatch.setattr(ctl, "BIRD_SOCKETS", (str(sock),))
    assert ctl.node_status() == 0
    thread.join(2)
    assert capsys.readouterr().out == EXPECTED_STATUS


def test_process_detection_by_felix_name(tmp_path) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "comm").write_text("calico-felix\n")
    (tmp_path / "42" / "cmdline").write_bytes(b"python3\0-m\0calico_double.agent\0")
    (tmp_path / "self").mkdir()
    assert ctl.calico_process_running(tmp_path)
    (tmp_path / "42" / "comm").write_text("bash\n")
    (tmp_path / "42" / "cmdline").write_bytes(b"bash\0")
    assert not ctl.calico_process_running(tmp_path)


def test_etcd_endpoints_precedence(tmp_path) -> None:
    (tmp_path / "calico.env").write_text('ETCD_ENDPOINTS="http://192.168.223.131:2379,http://192.168.223.130:2379"\n')
    assert ctl.etcd_endpoints({}, tmp_path) == ["http://192.168.223.131:2379", "http://192.168.223.130:2379"]
    (tmp_path / "calicoctl.cfg").write_text("apiVersion: v1\nkind: calicoApiConfig\nspec:\n"
                                            "  etcdEndpoints: http://10.0.0.1:2379\n")
    assert ctl.etcd_endpoints({}, tmp_path) == ["http://10.0.0.1:2379"]
    # calicoctl v1.6 reads only its config file when it exists, the environment otherwise.
    assert ctl.etcd_endpoints({"ETCD_ENDPOINTS": "http://a:2379/"}, tmp_path) == ["http://10.0.0.1:2379"]
    (tmp_path / "calicoctl.cfg").unlink()
    assert ctl.etcd_endpoints({"ETCD_ENDPOINTS": "http://a:2379/"}, tmp_path) == ["http://a:2379"]
    assert ctl.etcd_endpoints({}, tmp_path / "missing") == ["http://127.0.0.1:2379"]


def test_get_node_lists_names(monkeypatch, capsys) -> None:
    trees = {
        "/calico/v1/host": {"nodes": [{"key": "/calico/v1/host/node2", "nodes": []},
                                      {"key": "/calico/v1/host/node1", "nodes": []}]},
        "/calico/bgp/v1/host": {"nodes": [{"key": "/calico/bgp/v1/host/node1", "nodes": [
            {"key": "/calico/bgp/v1/host/node1/ip_addr_v4", "value": "192.168.223.131"},
            {"key": "/calico/bgp/v1/host/node1/network_v4", "value": "192.168.223.0/24"}]}]},
        "/calico/bgp/v1/global/as_num": {"value": "64512"},
    }
    monkeypatch.setattr(ctl, "etcd_get", lambda _eps, key, recursive=True: trees.get(key))
    monkeypatch.setattr(ctl, "datastore", lambda: ctl.Datastore(["http://x:2379"]))
    assert ctl.main(["get", "node"]) == 0
    assert capsys.readouterr().out == "NAME\nnode1\nnode2\n"
    assert ctl.main(["get", "nodes", "-o", "yaml"]) == 0
    out = capsys.readouterr().out
    assert "- apiVersion: v1\n  kind: node\n  metadata:\n    name: node1\n" in out
    assert "ipv4Address: 192.168.223.131/24" in out


def test_unknown_command_prints_usage(capsys) -> None:
    assert ctl.main(["frobnicate"]) == 1
    assert "Usage:" in capsys.readouterr().err

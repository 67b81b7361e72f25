"""The calicoctl double: BIRD parsing, the node status table, endpoint discovery."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
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


def fake_proc(root: Path, *names: str) -> Path:
    for pid, name in enumerate(names, start=10):
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "comm").write_text(name + "\n")
    (root / "self").mkdir(exist_ok=True)
    return root


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


EMPTY_BIRD6 = ["0001 BIRD 1.6.8 ready.", "2002-name     proto    table    state  since       info",
               "1002-kernel1  Kernel   master   up     09:31:10    ", "0000 "]


@pytest.fixture
def as_root(monkeypatch):
    monkeypatch.setattr(ctl.os, "geteuid", lambda: 0)


def status(monkeypatch, capsys, tmp_path: Path, procs: tuple[str, ...], v4: list[str] | None,
           v6: list[str] | None) -> tuple[int, str]:
    run = tmp_path / "run"
    run.mkdir()
    threads = [fake_bird(run / name, reply) for name, reply in (("bird.ctl", v4), ("bird6.ctl", v6)) if reply]
    monkeypatch.setattr(ctl, "BIRD_DIRS", (str(run), str(tmp_path / "none")))
    code = ctl.node_status(fake_proc(tmp_path / "proc", *procs))
    for thread in threads:
        thread.join(2)
    return code, capsys.readouterr().out


def test_node_status_matches_calicoctl_layout(monkeypatch, capsys, tmp_path, as_root) -> None:
    got = status(monkeypatch, capsys, tmp_path, ("calico-felix", "bird", "bird6"), ESTABLISHED, EMPTY_BIRD6)
    assert got == (0, EXPECTED_STATUS)


def test_peer_types_and_detail_for_sessions_not_established(monkeypatch, capsys, tmp_path, as_root) -> None:
    peers = ctl.parse_bird_protocols(NOT_ESTABLISHED)
    assert [(p["peer"], p["type"], p["state"], p["info"]) for p in peers] == [
        ("10.99.0.130", "node-to-node mesh", "start", "Connect Received: Administrative shutdown"),
        ("10.0.0.1", "global", "start", "Active Socket: Connection refused"),
        ("10.0.0.2", "node specific", "start", "Idle"),
    ]
    _, table = status(monkeypatch, capsys, tmp_path, ("calico-felix", "bird", "bird6"), NOT_ESTABLISHED,
                      EMPTY_BIRD6)
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines() if line.startswith("|")]
    want = ["10.99.0.130", "node-to-node mesh", "start", "19:56:21", "Connect Received: Administrative shutdown"]
    assert want in rows
    widths = {len(line) for line in table.splitlines() if line.startswith(("|", "+"))}
    assert len(widths) == 1  # every table line has the same width


def test_birdc_human_output_parses_too() -> None:
    lines = ["BIRD 1.6.8 ready.", "name     proto    table    state  since       info",
             "Mesh_192_168_223_131 BGP      master   up     10:29:48    Established"]
    assert ctl.parse_bird_protocols(lines)[0]["peer"] == "192.168.223.131"


def test_ipv6_peer_names_use_colons() -> None:
    lines = ["1002-Mesh_fd80_24e2_f998_72d7__2 BGP master up 10:29:48 Established"]
    assert ctl.parse_bird_protocols(lines, ":")[0]["peer"] == "fd80:24e2:f998:72d7::2"


def test_no_peers_message(monkeypatch, capsys, tmp_path, as_root) -> None:
    _, text = status(monkeypatch, capsys, tmp_path, ("calico-felix", "bird", "bird6"), EMPTY_BIRD6, EMPTY_BIRD6)
    assert "IPv4 BGP status\nNo IPv4 peers found.\n" in text


def test_unknown_bird_headings_are_an_error() -> None:
    with pytest.raises(ctl.CalicoctlError):
        ctl.parse_bird_protocols(["2002-name proto something"])


def test_not_running_is_decided_by_felix_alone(monkeypatch, capsys, tmp_path, as_root) -> None:
    # BIRD runs and answers, felix does not: calicoctl v1.6.1 says "not running", exit 1.
    assert status(monkeypatch, capsys, tmp_path, ("bird", "bird6"), ESTABLISHED, EMPTY_BIRD6) == (
        1, "Calico process is not running.\n")


def test_bird6_missing_is_an_info_line(monkeypatch, capsys, tmp_path, as_root) -> None:
    code, text = status(monkeypatch, capsys, tmp_path, ("calico-felix", "bird"), ESTABLISHED, None)
    assert code == 0
    assert text.endswith("\nINFO: BIRDv6 process: 'bird6' is not running.\n\n")
    assert "IPv6 BGP status" not in text


def test_no_bgp_daemon_at_all(monkeypatch, capsys, tmp_path, as_root) -> None:
    assert status(monkeypatch, capsys, tmp_path, ("calico-felix",), None, None) == (
        0, "Calico process is running.\n\nNone of the BGP backend processes (BIRD or GoBGP) are running.\n\n")


def test_bird_running_without_socket_says_so_and_exits_0(monkeypatch, capsys, tmp_path, as_root) -> None:
    code, text = status(monkeypatch, capsys, tmp_path, ("calico-felix", "bird", "bird6"), None, EMPTY_BIRD6)
    assert code == 0
    assert "IPv4 BGP status\nError querying BIRD: unable to connect to BIRDv4 socket: " in text
    assert "IPv6 BGP status\nNo IPv6 peers found.\n" in text


def test_requires_root(monkeypatch, capsys) -> None:
    monkeypatch.setattr(ctl.os, "geteuid", lambda: 1000)
    assert ctl.node_status() == 1
    assert capsys.readouterr().out == "Need super user privileges: Operation not permitted\n"


CFG = "apiVersion: v1\nkind: calicoApiConfig\nmetadata:\nspec:\n  etcdEndpoints: http://10.0.0.1:2379\n"


def test_etcd_endpoints_precedence(tmp_path) -> None:
    cfg = tmp_path / "calicoctl.cfg"
    # No file: the environment, else libcalico-go's default authority 127.0.0.1:2379.
    assert ctl.etcd_endpoints({}, cfg) == ["http://127.0.0.1:2379"]
    assert ctl.etcd_endpoints({"ETCD_AUTHORITY": "10.9.9.9:4001", "ETCD_SCHEME": "https"}, cfg) == [
        "https://10.9.9.9:4001"]
    assert ctl.etcd_endpoints({"ETCD_ENDPOINTS": "http://a:2379/,http://b:2379"}, cfg) == [
        "http://a:2379", "http://b:2379"]
    # calicoctl v1.6 reads only its config file when it exists; calico.env is never read.
    (tmp_path / "calico.env").write_text('ETCD_ENDPOINTS="http://192.168.223.131:2379"\n')
    cfg.write_text(CFG)
    assert ctl.etcd_endpoints({"ETCD_ENDPOINTS": "http://a:2379/"}, cfg) == ["http://10.0.0.1:2379"]
    cfg.write_text('{"apiVersion": "v1", "kind": "calicoApiConfig", "spec": {"etcdEndpoints": "http://j:2379"}}')
    assert ctl.etcd_endpoints({}, cfg) == ["http://j:2379"]


@pytest.mark.parametrize(("text", "error"), [
    (CFG.replace("apiVersion: v1", "apiVersion: projectcalico.org/v3"),
     "invalid config file: unknown APIVersion 'projectcalico.org/v3'"),
    (CFG.replace("calicoApiConfig", "CalicoAPIConfig"),
     "invalid config file: expected kind 'calicoApiConfig', got 'CalicoAPIConfig'"),
    (CFG + "  etcdEndpoint: http://typo:2379\n", 'json: unknown field "etcdEndpoint"'),
    ("apiVersion: v1\nkind: calicoApiConfig\netcdEndpoints: http://x:2379\n", 'json: unknown field "etcdEndpoints"'),
])
def test_config_file_is_strict(tmp_path, capsys, monkeypatch, text: str, error: str) -> None:
    cfg = tmp_path / "calicoctl.cfg"
    cfg.write_text(text)
    monkeypatch.setattr(ctl, "CONFIG_FILE", str(cfg))
    assert ctl.main(["get", "ippool"]) == 1
    assert capsys.readouterr().out == f"Failed to get resources: syntax error in {cfg}: " + (
        "error unmarshaling JSON: " if "unknown field" in error else "") + error + "\n"


class FakeEtcdHTTP:
    """A real HTTP server answering /v2/keys like etcd, or like an etcd 3.4 without --enable-v2."""

    def __init__(self, tree: dict[str, dict] | None) -> None:
        import http.server

        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                key = self.path.split("/v2/keys", 1)[-1].split("?", 1)[0]
                if owner.tree is None:
                    body, code = b"404 page not found\n", 404
                elif key in owner.tree:
                    body, code = json.dumps({"action": "get", "node": owner.tree[key]}).encode(), 200
                else:
                    body, code = json.dumps({"errorCode": 100, "message": "Key not found", "cause": key,
                                             "index": 7}).encode(), 404
                self.send_response(code)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.tree = tree
        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


def pools_tree() -> dict[str, dict]:
    v4 = {"cidr": "192.168.0.0/16", "ipip": "", "ipip_mode": "", "masquerade": True, "ipam": True,
          "disabled": False}
    v6 = {"cidr": "fd80:24e2:f998:72d6::/64", "ipip": "", "ipip_mode": "", "masquerade": False, "ipam": True,
          "disabled": False}
    return {"/calico/v1/ipam/v4/pool": {"nodes": [{"key": "/calico/v1/ipam/v4/pool/192.168.0.0-16",
                                                  "value": json.dumps(v4)}]},
            "/calico/v1/ipam/v6/pool": {"nodes": [{"key": "/calico/v1/ipam/v6/pool/fd80:24e2:f998:72d6::-64",
                                                  "value": json.dumps(v6)}]}}


def test_get_ippool_lists_both_families_and_omits_false_fields(monkeypatch, capsys, tmp_path) -> None:
    etcd = FakeEtcdHTTP(pools_tree())
    monkeypatch.setattr(ctl, "CONFIG_FILE", str(tmp_path / "absent.cfg"))
    monkeypatch.setenv("ETCD_ENDPOINTS", etcd.url)
    assert ctl.main(["get", "ippool"]) == 0
    assert capsys.readouterr().out == "CIDR\n192.168.0.0/16\nfd80:24e2:f998:72d6::/64\n\n"
    assert ctl.main(["get", "ippool", "-o", "wide"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["CIDR                       NAT     IPIP",
                                                       "192.168.0.0/16             true    false"]
    assert ctl.main(["get", "ippool", "-o", "yaml"]) == 0
    assert capsys.readouterr().out == (
        "- apiVersion: v1\n  kind: ipPool\n  metadata:\n    cidr: 192.168.0.0/16\n  spec:\n    nat-outgoing: true\n"
        "- apiVersion: v1\n  kind: ipPool\n  metadata:\n    cidr: fd80:24e2:f998:72d6::/64\n  spec: {}\n")


def test_v2_api_disabled_is_an_error_not_an_empty_list(monkeypatch, capsys, tmp_path) -> None:
    etcd = FakeEtcdHTTP(None)  # etcd 3.4+ without --enable-v2 answers 404 with plain text
    monkeypatch.setattr(ctl, "CONFIG_FILE", str(tmp_path / "absent.cfg"))
    monkeypatch.setenv("ETCD_ENDPOINTS", etcd.url)
    assert ctl.main(["get", "ippool"]) == 1
    assert capsys.readouterr().out == ("Failed to get resources: client: response is invalid json. The endpoint "
                                       "is probably not valid etcd cluster endpoint.\n")


def test_etcd_unreachable(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setattr(ctl, "CONFIG_FILE", str(tmp_path / "absent.cfg"))
    monkeypatch.setenv("ETCD_ENDPOINTS", "http://127.0.0.1:9")
    assert ctl.main(["get", "nodes"]) == 1
    assert capsys.readouterr().out.startswith(
        "Failed to get resources: client: etcd cluster is unavailable or misconfigured; error #0: ")


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
    assert capsys.readouterr().out == "NAME\nnode1\nnode2\n\n"
    assert ctl.main(["get", "nodes", "-o", "yaml"]) == 0
    out = capsys.readouterr().out
    assert "- apiVersion: v1\n  kind: node\n  metadata:\n    name: node1\n" in out
    assert "ipv4Address: 192.168.223.131/24" in out


def test_unknown_command_prints_usage(capsys) -> None:
    assert ctl.main(["frobnicate"]) == 1
    assert "Usage:" in capsys.readouterr().err

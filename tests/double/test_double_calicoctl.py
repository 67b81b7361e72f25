"""The calicoctl double: BIRD parsing, the node status table, endpoint discovery."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import ModuleType

import pytest
from double_kit import EtcdV2HTTP

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


@contextmanager
def fake_bird(path: Path, reply: list[str]) -> Iterator[None]:
    """A BIRD control socket: every connection gets the recorded reply to `show protocols`."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    asked: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # shut down below
            with conn:
                conn.settimeout(5)
                asked.append(conn.recv(100))
                conn.sendall(("\n".join(reply) + "\n").encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        server.close()
        thread.join(5)
    assert all(request == b"show protocols\n" for request in asked)


EMPTY_BIRD6 = ["0001 BIRD 1.6.8 ready.", "2002-name     proto    table    state  since       info",
               "1002-kernel1  Kernel   master   up     09:31:10    ", "0000 "]


@pytest.fixture
def as_root(monkeypatch):
    monkeypatch.setattr(ctl.os, "geteuid", lambda: 0)


def status(monkeypatch, capsys, tmp_path: Path, procs: tuple[str, ...], v4: list[str] | None,
           v6: list[str] | None) -> tuple[int, str]:
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(ctl, "BIRD_DIRS", (str(run), str(tmp_path / "none")))
    with ExitStack() as stack:
        for name, reply in (("bird.ctl", v4), ("bird6.ctl", v6)):
            if reply:
                stack.enter_context(fake_bird(run / name, reply))
        code = ctl.node_status(fake_proc(tmp_path / "proc", *procs))
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
    widths = {len(line) for line in table.splitlines() if line.startswith(("|", "+"))}
    assert len(widths) == 1  # every table line has the same width, wrapped rows included
    # Cells over MAX_ROW_WIDTH (30, tablewriter table.go) wrap and the INFO column is 30 wide
    # (plus a space each side); the oracle's cases pin the exact layout.
    rule = next(line for line in table.splitlines() if line.startswith("+"))
    assert rule.split("+")[-2] == "-" * 32


def test_unexpected_bird_line_is_an_error(monkeypatch, capsys, tmp_path, as_root) -> None:
    # status.go scanBIRDPeers: a line without a 0001/2002/1002/space prefix ends the command with
    # `Error executing command: unexpected output line from BIRD` (no newline) and exit 1.
    birdc = ["BIRD 1.6.8 ready.", "name     proto    table    state  since       info",
             "Mesh_192_168_223_131 BGP      master   up     10:29:48    Established"]
    assert status(monkeypatch, capsys, tmp_path, ("calico-felix", "bird", "bird6"), birdc, EMPTY_BIRD6) == (
        1, "Calico process is running.\n\nIPv4 BGP status\nError executing command: unexpected output line "
        "from BIRD")


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
    # status.go printBIRDPeers prints the error of its second dial, /var/run/bird/bird.ctl
    # (calicoctl@v1.6.1 calicoctl/commands/node/status.go:205-207, no newline); Go's net package
    # words it (`dial unix <path>: connect: ...`).
    assert (f"IPv4 BGP status\nError querying BIRD: unable to connect to BIRDv4 socket: dial unix "
            f"{tmp_path}/none/bird.ctl: connect: no such file or directory\nIPv6 BGP status\n") in text
    assert "IPv6 BGP status\nNo IPv6 peers found.\n" in text


def test_requires_root(monkeypatch, capsys) -> None:
    monkeypatch.setattr(ctl.os, "geteuid", lambda: 1000)
    assert ctl.node_status() == 1
    assert capsys.readouterr().out == "Need super user privileges: Operation not permitted\n"


CFG = "apiVersion: v1\nkind: calicoApiConfig\nmetadata:\nspec:\n  etcdEndpoints: http://10.0.0.1:2379\n"


def test_etcd_endpoints_precedence(tmp_path) -> None:
    cfg = tmp_path / "calicoctl.cfg"
    # No file: the environment, else libcalico-go's default authority 127.0.0.1:2379
    # (libcalico-go@63d3fb8 lib/api/apiconfig.go:50-52; ETCD_ENDPOINTS wins over the authority,
    # split on commas: lib/backend/etcd/etcd.go:53-58).
    assert ctl.etcd_endpoints({}, cfg) == ["http://127.0.0.1:2379"]
    assert ctl.etcd_endpoints({"ETCD_AUTHORITY": "10.9.9.9:4001", "ETCD_SCHEME": "https"}, cfg) == [
        "https://10.9.9.9:4001"]
    assert ctl.etcd_endpoints({"ETCD_ENDPOINTS": "http://a:2379/,http://b:2379"}, cfg) == [
        "http://a:2379", "http://b:2379"]
    # calicoctl v1.6 reads only its config file when it exists; calico.env is never read
    # (calicoctl@v1.6.1 calicoctl/commands/clientmgr/client.go:49-58, libcalico-go@63d3fb8
    # lib/client/client.go:150-162).
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
    # commands/resources.go executeConfigCommand: clientmgr.NewClient's error, then exit 1
    # (calicoctl@v1.6.1 calicoctl/commands/resources.go:242-245). The error: libcalico-go@63d3fb8
    # lib/client/client.go:158 (`syntax error in <file>: `), :180 (yaml.UnmarshalStrict),
    # :186 (APIVersion), :189 (kind).
    assert capsys.readouterr().out == f"Failed to create Calico API client: syntax error in {cfg}: " + (
        "error unmarshaling JSON: " if "unknown field" in error else "") + error + "\n"


class FakeEtcdHTTP:
    """A real HTTP server answering /v2/keys like an etcd 3.4 without --enable-v2 (plain 404)."""

    def __init__(self) -> None:
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(404)
                self.end_headers()
                self.wfile.write(b"404 page not found\n")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


# The guide's two nodes and default pools as calico/node 2.6.1 stores them (libcalico-go 63d3fb8
# lib/backend/model): host metadata, BGP leaves, the pools' JSON.
GUIDE_KEYS = {
    "/calico/v1/host/node1/metadata": "{}",
    "/calico/v1/host/node2/metadata": "{}",
    "/calico/bgp/v1/host/node1/ip_addr_v4": "192.168.223.131",
    "/calico/bgp/v1/host/node1/network_v4": "192.168.223.0/24",
    "/calico/bgp/v1/host/node2/ip_addr_v4": "192.168.223.130",
    "/calico/bgp/v1/host/node2/network_v4": "192.168.223.0/24",
    "/calico/v1/ipam/v4/pool/192.168.0.0-16": json.dumps(
        {"cidr": "192.168.0.0/16", "ipip": "", "ipip_mode": "", "masquerade": True, "ipam": True, "disabled": False}),
    "/calico/v1/ipam/v6/pool/fd80:24e2:f998:72d6::-64": json.dumps(
        {"cidr": "fd80:24e2:f998:72d6::/64", "ipip": "", "ipip_mode": "", "masquerade": False, "ipam": True,
         "disabled": False}),
}


@pytest.fixture
def guide_etcd(monkeypatch, tmp_path):
    etcd = EtcdV2HTTP(dict(GUIDE_KEYS))
    monkeypatch.setattr(ctl, "CONFIG_FILE", str(tmp_path / "absent.cfg"))
    monkeypatch.setenv("ETCD_ENDPOINTS", etcd.url)
    yield etcd
    etcd.close()


def run(capsys, *argv: str) -> tuple[int, str]:
    code = ctl.main(list(argv))
    return code, capsys.readouterr().out


def test_get_ippool_lists_both_families_and_omits_false_fields(guide_etcd, capsys) -> None:
    assert run(capsys, "get", "ippool", "-o", "yaml") == (0, (
        "- apiVersion: v1\n  kind: ipPool\n  metadata:\n    cidr: 192.168.0.0/16\n  spec:\n    nat-outgoing: true\n"
        "- apiVersion: v1\n  kind: ipPool\n  metadata:\n    cidr: fd80:24e2:f998:72d6::/64\n  spec: {}\n"))


def test_v2_api_disabled_is_an_error_not_an_empty_list(monkeypatch, capsys, tmp_path) -> None:
    etcd = FakeEtcdHTTP()  # etcd 3.4+ without --enable-v2 answers 404 with plain text
    # A non-2xx body that is not etcd's JSON error is ErrInvalidJSON (coreos/etcd@17ae440
    # client/keys.go:653-654, 676-680, the words at :69); libcalico-go passes it through
    # (lib/backend/etcd/etcd.go:372-374, lib/errors/errors.go:27-28) and get.go prints it
    # (calicoctl@v1.6.1 calicoctl/commands/get.go:178-180).
    monkeypatch.setattr(ctl, "CONFIG_FILE", str(tmp_path / "absent.cfg"))
    monkeypatch.setenv("ETCD_ENDPOINTS", etcd.url)
    assert ctl.main(["get", "ippool"]) == 1
    assert capsys.readouterr().out == ("Failed to get resources: client: response is invalid json. The endpoint "
                                       "is probably not valid etcd cluster endpoint.\n")


def test_etcd_unreachable(monkeypatch, capsys, tmp_path) -> None:
    # coreos/etcd client/cluster_error.go: each endpoint's error after `; error #n: ` and a
    # newline; the transport's error as Go 1.8 words a refused connect (`getsockopt:`).
    # coreos/etcd@17ae440 client/client.go:39 (the lead words), client/cluster_error.go:24-26;
    # calicoctl@v1.6.1 calicoctl/commands/get.go:179 (`Failed to get resources: %v\n`).
    monkeypatch.setattr(ctl, "CONFIG_FILE", str(tmp_path / "absent.cfg"))
    monkeypatch.setenv("ETCD_ENDPOINTS", "http://127.0.0.1:9")
    assert run(capsys, "get", "nodes") == (1, (
        "Failed to get resources: client: etcd cluster is unavailable or misconfigured; error #0: "
        "dial tcp 127.0.0.1:9: getsockopt: connection refused\n\n"))


def test_get_node_lists_only_hosts_under_v1_host(guide_etcd, capsys) -> None:
    # libcalico-go 63d3fb8 listHostMetadata enumerates /calico/v1/host only: a BGP-only folder
    # (/calico/bgp/v1/host/ghost) is no node (lib/backend/compat/compat.go:345-347 lists nodes
    # by host metadata; lib/backend/etcd/etcd.go:423-453 takes every entry directly under
    # /calico/v1/host).
    guide_etcd.keys["/calico/bgp/v1/host/ghost/ip_addr_v4"] = "10.9.9.9"
    assert run(capsys, "get", "node") == (0, "NAME    \nnode1   \nnode2   \n\n")
    code, out = run(capsys, "get", "nodes", "-o", "yaml")
    assert code == 0 and "ghost" not in out
    assert "- apiVersion: v1\n  kind: node\n  metadata:\n    name: node1\n" in out
    assert "ipv4Address: 192.168.223.131/24" in out


@pytest.mark.parametrize("argv", [("get", "ipPool"), ("get", "IPPOOLS"), ("get", "ipp"), ("get", "pools")])
def test_get_kinds_are_case_insensitive_with_aliases(guide_etcd, capsys, argv) -> None:
    # commands/resources.go getResourceFromArguments: strings.ToLower(kind) against the aliases
    # (calicoctl@v1.6.1 calicoctl/commands/resources.go:104, ipPool's at :129).
    assert run(capsys, *argv) == (0, "CIDR                       \n192.168.0.0/16             \n"
                                     "fd80:24e2:f998:72d6::/64   \n\n")


def test_get_name_selects_one_resource(guide_etcd, capsys) -> None:
    # The NAME goes into the resource's metadata and the list is filtered by it; a name that does
    # not exist lists nothing (get.go's help: "will simply return no results").
    # calicoctl@v1.6.1 calicoctl/commands/resources.go:107 (node NAME), get.go:80 (the help);
    # libcalico-go@63d3fb8 lib/backend/etcd/etcd.go:403-418 (one host, none if absent).
    assert run(capsys, "get", "node", "node1") == (0, "NAME    \nnode1   \n\n")
    assert run(capsys, "get", "node", "nosuch") == (0, "NAME   \n\n")
    # An ipPool NAME is a CIDR (net.ParseCIDR: masked to its network; resources.go:131-136, its
    # error returned as is: libcalico-go@63d3fb8 lib/net/ipnet.go:81-83, Go's words).
    assert run(capsys, "get", "ippool", "192.168.7.0/16") == (0, "CIDR             \n192.168.0.0/16   \n\n")
    assert run(capsys, "get", "ippool", "pool-a") == (1, "Failed to get resources: invalid CIDR address: pool-a\n")


def test_get_config_option_is_honoured(guide_etcd, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ETCD_ENDPOINTS", "http://127.0.0.1:9")  # wrong: the file must win
    cfg = tmp_path / "other.cfg"
    cfg.write_text(CFG.replace("http://10.0.0.1:2379", guide_etcd.url))
    assert run(capsys, "get", "node", "-c", str(cfg)) == (0, "NAME    \nnode1   \nnode2   \n\n")
    assert run(capsys, "get", "node", f"--config={cfg}") == (0, "NAME    \nnode1   \nnode2   \n\n")
    # clientmgr.LoadClientConfig: a -c file other than the default must exist
    # (calicoctl@v1.6.1 calicoctl/commands/clientmgr/client.go:49-53; -c: get.go:59-61).
    assert run(capsys, "get", "node", "-c", str(tmp_path / "missing.cfg")) == (
        1, f"Error reading config file: {tmp_path / 'missing.cfg'}\n")


def test_get_output_formats_as_get_go(guide_etcd, capsys) -> None:
    # custom-columns: the named headings of resourcemgr's headingsMap, in the given order.
    # calicoctl@v1.6.1 calicoctl/commands/get.go:158-163 (custom-columns), :146-150 (empty
    # go-template), :167-169 (anything else).
    assert run(capsys, "get", "node", "-o", "custom-columns=IPV4,NAME") == (
        0, "IPV4                 NAME    \n192.168.223.131/24   node1   \n192.168.223.130/24   node2   \n\n")
    assert run(capsys, "get", "node", "-o", "bogus") == (1, "unrecognized output format 'bogus'\n")
    assert run(capsys, "get", "node", "-o", "go-template=") == (1, "need to specify a template\n")
    assert run(capsys, "get", "node", "-o", "custom-columns=") == (1, "need to specify at least one column\n")


def test_go_template_is_refused_not_replaced_by_a_table(guide_etcd, capsys) -> None:
    code = ctl.main(["get", "node", "-o", "go-template={{range .}}{{.Metadata.Name}}{{end}}"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert "go-template" in captured.err and "not implemented" in captured.err


@pytest.mark.parametrize("argv,what", [
    (("get", "bgpPeer"), "get bgpPeer"), (("get", "profiles"), "get profiles"), (("get", "hep"), "get hep"),
    (("get", "wep"), "get wep"), (("get", "policy"), "get policy"), (("get", "-f", "pool.yaml"), "--filename"),
])
def test_kinds_and_files_it_does_not_implement_are_refused_in_one_line(guide_etcd, capsys, argv, what) -> None:
    # calicoctl v1.6.1 accepts these kinds and -f (commands/resources.go getResourceFromArguments);
    # the double implements node and ipPool only, and says so instead of printing an empty table.
    code = ctl.main(list(argv))
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert what in captured.err and "not implemented" in captured.err and captured.err.count("\n") == 1


@pytest.mark.parametrize("argv", [
    ("get", "node", "--allow-version-mismatch"),  # a calicoctl v3 flag
    ("get",),
    ("get", "node", "node1", "node2"),
])
def test_get_bad_arguments_as_docopt(capsys, argv) -> None:
    # get.go: docopt fails -> its usage on stderr, then this line on stdout, exit 1
    # (calicoctl@v1.6.1 calicoctl/commands/get.go:112-116; the usage, without
    # --allow-version-mismatch and with one optional NAME: get.go:30-34).
    code = ctl.main(list(argv))
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, f"Invalid option: 'calicoctl {' '.join(argv)}'. Use flag '--help' to "
                                       "read about a specific subcommand.\n")
    assert captured.err.startswith("Usage:\n  calicoctl get ")


def test_get_unknown_kind(capsys) -> None:
    # calicoctl@v1.6.1 calicoctl/commands/resources.go:160-161, printed by get.go:178-180.
    assert run(capsys, "get", "frobs") == (1, "Failed to get resources: Resource type 'frobs' is not supported\n")


def test_version_with_etcd_down_says_unknown_and_exits_0(monkeypatch, capsys, tmp_path) -> None:
    # commands/version.go: GetFelixConfig's error goes into `unknown (<error>)`; exit 0.
    # calicoctl@v1.6.1 calicoctl/commands/version.go:56 (Println: label, space, version),
    # :69-82; the error: coreos/etcd@17ae440 client/cluster_error.go:24-26, client/client.go:39,
    # through libcalico-go@63d3fb8 lib/client/config.go:264-267 unchanged.
    monkeypatch.setattr(ctl, "CONFIG_FILE", str(tmp_path / "absent.cfg"))
    monkeypatch.setenv("ETCD_ENDPOINTS", "http://127.0.0.1:9")
    code, out = run(capsys, "version")
    error = ("client: etcd cluster is unavailable or misconfigured; error #0: dial tcp 127.0.0.1:9: getsockopt: "
             "connection refused\n")
    assert code == 0
    assert out.splitlines(keepends=True)[0] == "Client Version:    v1.6.1\n"
    assert out.endswith(f"Cluster Version:   unknown ({error})\nCluster Type:      unknown ({error})\n")


def test_version_reads_cluster_keys(guide_etcd, capsys) -> None:
    # calicoctl@v1.6.1 calicoctl/commands/version.go:69-82: the value when set, `unknown` when not
    # (libcalico-go@63d3fb8 lib/client/config.go:268-269, 389-393: a missing key is unset).
    guide_etcd.keys["/calico/v1/config/CalicoVersion"] = "v2.6.1"
    code, out = run(capsys, "version")
    assert code == 0
    assert out.endswith("Cluster Version:   v2.6.1\nCluster Type:      unknown\n")


def test_version_with_bad_config_prints_the_error_and_exits_1(monkeypatch, capsys, tmp_path) -> None:
    # calicoctl@v1.6.1 calicoctl/commands/version.go:62-66 prints NewClient's error bare, exit 1;
    # the words: libcalico-go@63d3fb8 lib/client/client.go:158, :189.
    cfg = tmp_path / "calicoctl.cfg"
    cfg.write_text(CFG.replace("calicoApiConfig", "CalicoAPIConfig"))
    monkeypatch.setattr(ctl, "CONFIG_FILE", str(cfg))
    code, out = run(capsys, "version")
    assert code == 1
    assert out.endswith(f"Git commit:        calico-double\nsyntax error in {cfg}: invalid config file: expected "
                        "kind 'calicoApiConfig', got 'CalicoAPIConfig'\n")


def test_unknown_command_prints_usage(capsys) -> None:
    assert ctl.main(["frobnicate"]) == 1
    assert "Usage:" in capsys.readouterr().err


def test_unknown_option_before_the_command_runs_nothing(capsys) -> None:
    # calicoctl.go: `arguments, _ := docopt.Parse(doc, nil, true, ..., true, false)`: docopt writes
    # its usage to stderr, the error is dropped, no command runs, exit 0.
    # calicoctl@v1.6.1 calicoctl/calicoctl.go:56 (the error dropped), :70 (no <command>, nothing runs).
    code = ctl.main(["--allow-version-mismatch", "get", "node"])
    captured = capsys.readouterr()
    assert (code, captured.out) == (0, "")
    assert captured.err.startswith("Usage:\n  calicoctl [options] <command> [<args>...]")


def test_unknown_log_level(capsys) -> None:
    # calicoctl.go: logrus.ParseLevel fails -> this message, exit 1
    # (calicoctl@v1.6.1 calicoctl/calicoctl.go:58-63).
    assert run(capsys, "-l", "loud", "version") == (
        1, "Unknown log level: loud, expected one of: \npanic, fatal, error, warn, info, debug.\n")

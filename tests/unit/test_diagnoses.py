"""Symptom -> diagnosis: each check of calicolab/diagnose/ on a fake cluster that shows one
symptom names the right cause, at the right place (Diagnosis.where, which the check computes,
not the catalogue's constant text), and passes on a healthy cluster."""

from __future__ import annotations

import threading

import pytest
from fake_cluster import CFG, NO_ANSWER, both, etcd_conf, fake_view, http, node_status, said, status_json, top

from calicolab.core import deadlines
from calicolab.core.errors import UserError
from calicolab.diagnose import checks
from calicolab.diagnose import etcd as diag_etcd
from calicolab.diagnose.diagnoses import FAIL, PASS, WARN, Finding
from calicolab.diagnose.engine import Check
from calicolab.stack import parsers, probes

NODE1, NODE2 = CFG.nodes[0], CFG.nodes[1]


def finding(view, check: str, node: str):
    found = [f for f in checks.run(view, [check]) if f.node == node]
    assert len(found) == 1, found
    return found[0]


def test_a_healthy_cluster_passes_every_check():
    found = checks.run(fake_view())
    assert {f.check for f in found} == set(checks.CHECK_NAMES)
    assert [f for f in found if f.result != PASS] == []


# etcd stopped on node2: its client port is closed, node1 has lost quorum.
ETCD2_DOWN = {
    "node1": {rf"//{NODE2.ip}:2379": NO_ANSWER, r":2379/health": http('{"health":"false"}', 503)},
    "node2": {r"systemctl is-active etcd": said("inactive\n", 3), r":2379": NO_ANSWER},
}


def test_stopped_member_is_named_by_member_and_cluster_checks():
    view = fake_view(ETCD2_DOWN)
    member = finding(view, "etcd member", "node2")
    assert member.result == FAIL and member.diagnosis.name == "etcd member down"
    assert member.diagnosis.where.startswith("node2")
    assert finding(view, "etcd member", "node1").result == PASS
    cluster = finding(view, "etcd cluster", "cluster")
    assert cluster.seen.startswith("degraded: node2 down")
    assert cluster.diagnosis.name == "etcd member down" and "node2" in cluster.diagnosis.where


def test_stale_data_dir_is_named_from_the_journal():
    view = fake_view({"node2": {r"systemctl is-active etcd": said("failed\n", 3), r":2379": NO_ANSWER,
                                r"^journalctl -u etcd": said("member 3ce0924df128467e has already been "
                                                             "bootstrapped\n")}})
    assert finding(view, "etcd member", "node2").diagnosis.name == "etcd stale data dir"


def test_member_waiting_for_quorum_is_the_guides_publish_error():
    view = fake_view({"node2": {r"systemctl is-active etcd": said("activating\n", 3), r":2379": NO_ANSWER,
                                r"^journalctl -u etcd": said("publish error: etcdserver: request timed out\n")}})
    assert finding(view, "etcd member", "node2").diagnosis.name == "etcd publish timeout"


def test_no_loopback_client_url_is_the_guides_4001_error():
    view = fake_view({"node1": {r"//127\.0\.0\.1:2379": NO_ANSWER}})
    found = finding(view, "etcd loopback URL", "node1")
    assert found.result == FAIL and found.diagnosis.name == "etcdctl 127.0.0.1:4001"
    assert "ETCD_LISTEN_CLIENT_URLS" in found.diagnosis.fix


def test_different_cluster_ids_mean_a_stale_data_dir():
    other = status_json("node2", cluster_id="111")
    view = fake_view(both({rf"//{NODE2.ip}:2379/v3/maintenance/status": http(other)}))
    found = finding(view, "etcd cluster", "cluster")
    assert found.result == FAIL and found.diagnosis.name == "etcd stale data dir"


def test_members_that_cannot_reach_each_other_on_2380():
    view = fake_view(both({r":2379/health": http('{"health":"false"}', 503),
                           r"/dev/tcp/\S+/2380": said("tcp-rc=124\n")}))
    found = finding(view, "etcd cluster", "cluster")
    assert found.diagnosis.name == "etcd peer port blocked" and found.diagnosis.where == "node1 -> node2:2380"


def test_members_that_cannot_reach_each_other_at_all_are_an_unreachable_peer_not_a_firewall():
    # Debian VM lane: "dial tcp 192.168.229.130:2380: connect: no route to host" was called a
    # blocked 2380 with the advice to open the port.
    view = fake_view(both({r":2379/health": http('{"health":"false"}', 503),
                           r"/dev/tcp/\S+/2380": said("tcp-rc=1\nbash: connect: No route to host\n"),
                           r"^ping -c 1": said("", 1)}))
    found = finding(view, "etcd cluster", "cluster")
    assert found.diagnosis.name == "peer unreachable" and found.diagnosis.where.startswith(f"node1 -> {NODE2.ip}")


# etcd 3.4 without ETCD_ENABLE_V2 in its etcd.conf (which the v2 check reads to say so).
V2_OFF = {n.name: {r":2379/v2/keys/": http("404 page not found", 404),
                   r"^cat /etc/etcd/etcd\.conf": said(etcd_conf(n.name, enable_v2=False))} for n in CFG.nodes}


def test_v2_api_off_names_enable_v2_for_etcd_and_dockers_store():
    view = fake_view(V2_OFF)
    for check in ("etcd v2 API", "docker cluster store"):
        found = finding(view, check, "node1")
        assert found.result == FAIL and found.diagnosis.name == "etcd v2 API off"
        assert found.diagnosis.where.startswith("node1")
    assert "ETCD_ENABLE_V2 unset in etcd.conf" in finding(view, "etcd v2 API", "node1").seen


def test_a_missing_key_is_not_the_v2_api_off():
    assert not diag_etcd.v2_off(probes.HttpAnswer(404, '{"errorCode":100,"message":"Key not found"}'))
    assert diag_etcd.v2_off(probes.HttpAnswer(404, "404 page not found"))


@pytest.mark.parametrize("answer,diagnosis", [
    (said("Server Version: 20.10.24\n"), "no cluster store"),
    (said(" Cluster Store: etcd://10.9.9.9:2379\n"), "cluster store unreachable"),
    (said("Cannot connect to the Docker daemon\n", 1), "docker down"),
])
def test_dockers_cluster_store(answer, diagnosis):
    view = fake_view({"node1": {r"^docker info": answer, r"//10\.9\.9\.9:2379": NO_ANSWER}})
    assert finding(view, "docker cluster store", "node1").diagnosis.name == diagnosis


def test_a_network_on_one_host_only_means_no_shared_store():
    view = fake_view({"node2": {r"^docker network ls": said("")}})
    found = finding(view, "calico networks shared", "cluster")
    assert found.result == FAIL and found.diagnosis.name == "network not shared"
    assert "node2: none" in found.seen


LISTENING_IPAM_ONLY = said("u_str LISTEN 0 128 /run/docker/plugins/calico-ipam.sock 41231 * 0\n")


def test_missing_plugin_sockets():
    view = fake_view({"node2": {r"test -S /run/docker/plugins/calico.sock": said("", 1),
                                r"^ss -xl": LISTENING_IPAM_ONLY}})
    found = finding(view, "libnetwork plugin", "node2")
    assert found.diagnosis.name == "plugin sockets missing" and found.seen == "calico.sock missing"


def test_stale_plugin_socket_without_listener():
    # A SIGKILLed plugin (docker stop of calico/node) leaves its socket file: still unusable.
    view = fake_view({"node2": {r"^ss -xl": LISTENING_IPAM_ONLY}})
    found = finding(view, "libnetwork plugin", "node2")
    assert found.diagnosis.name == "plugin sockets missing" and found.seen == "calico.sock stale (no listener)"


CALICO_DOWN = {r"systemctl is-active calico-node": said("failed\n", 3),
               r"docker inspect -f '\{\{.State.Running\}\}' calico-node": said("false\n"),
               r"^docker top calico-node": said("", 1)}


def test_calico_node_down():
    view = fake_view({"node2": CALICO_DOWN})
    found = finding(view, "calico-node", "node2")
    assert found.diagnosis.name == "calico-node down"
    assert finding(view, "BIRD", "node2").diagnosis.name == "calico-node down"


def test_calico_node_that_gave_up_on_etcd_at_boot():
    view = fake_view({"node2": {**CALICO_DOWN, r"^journalctl -u calico-node": said(
        "ERROR: Error accessing the Calico datastore: client: etcd cluster is unavailable or misconfigured\n")}})
    assert finding(view, "calico-node", "node2").diagnosis.name == "calico-node started before etcd"


def test_calico_node_down_because_etcd_is_down_blames_etcd():
    symptoms = {**ETCD2_DOWN, "node2": {**ETCD2_DOWN["node2"], **CALICO_DOWN}}
    found = finding(fake_view(symptoms), "calico-node", "node2")
    assert found.diagnosis.name == "etcd member down"


def test_bird_killed_and_bird_restarted():
    down = fake_view({"node1": {r"^docker top calico-node": said(top(bird=False))}})
    assert finding(down, "BIRD", "node1").diagnosis.name == "BIRD down"
    again = fake_view({"node1": {r"^docker top calico-node": said(top(bird_age=30, felix_age=900))}})
    found = finding(again, "BIRD", "node1")
    assert found.result == WARN and found.diagnosis.name == "BIRD restarted"
    assert found.ok  # a warning does not fail the doctor


def test_felix_killed_and_felix_restarted():
    down = fake_view({"node1": {r"^docker top calico-node": said(top(felix=False))}})
    assert finding(down, "felix", "node1").diagnosis.name == "felix down"
    again = fake_view({"node1": {r"^docker top calico-node": said(top(felix_age=12))}})
    found = finding(again, "felix", "node1")
    assert found.result == WARN and found.diagnosis.name == "felix restarted" and found.ok
    assert finding(fake_view({}), "felix", "node1").diagnosis is None  # healthy: passes


def _session_down(info: str = "Active") -> dict:
    return {"node1": {r"^/usr/local/bin/calicoctl node status": said(node_status(NODE2.ip, "start", info))}}


RULE = f"-A INPUT -s {NODE1.ip}/32 -p tcp -m tcp --dport 179 -j DROP"


def test_a_rule_alone_is_the_firewall_checks_finding_not_the_sessions():
    view = fake_view({"node2": {r"^iptables-save": said(f"*filter\n{RULE}\nCOMMIT\n")}})
    assert finding(view, "BGP mesh", "node1").result == PASS  # the session does not meet it (yet)
    port = finding(view, "BGP port 179", "node2")
    assert port.result == FAIL and port.diagnosis.name == "BGP port blocked" and RULE in port.diagnosis.where
    assert finding(view, "BGP port 179", "node1").result == PASS


def test_a_blocked_session_is_named_from_its_unanswered_syns_not_from_the_rule():
    symptoms = _session_down()
    symptoms["node1"][r"^ss -Htn state syn-sent"] = said(f"0  1  {NODE1.ip}:40123  {NODE2.ip}:179\n")
    symptoms["node2"] = {r"^iptables-save": said(f"*filter\n{RULE}\nCOMMIT\n")}
    mesh = finding(fake_view(symptoms), "BGP mesh", "node1")
    assert mesh.diagnosis.name == "BGP port blocked"
    assert mesh.diagnosis.where.startswith(f"node1 -> {NODE2.ip}:179 SYN unanswered")
    assert RULE not in mesh.diagnosis.where


def test_a_refused_session_is_not_blamed_on_a_rule_that_is_also_there():
    # The old session_cause returned "BGP port blocked" as soon as any rule mentioned 179.
    symptoms = _session_down("Active Socket: Connection refused")
    symptoms["node2"] = {r"^iptables-save": said(f"*filter\n{RULE}\nCOMMIT\n")}
    assert finding(fake_view(symptoms), "BGP mesh", "node1").diagnosis.name == "BGP peer not listening"


SYN_SENT = said(f"0  1  {NODE1.ip}:40123  {NODE2.ip}:179\n")


@pytest.mark.parametrize("info,sockets,ping_rc,diagnosis", [
    ("Active", SYN_SENT, 0, "BGP port blocked"),
    ("Active Socket: Connection timed out", said(""), 0, "BGP port blocked"),
    ("Active Socket: Connection refused", said(""), 0, "BGP peer not listening"),
    ("Active", SYN_SENT, 1, "peer unreachable"),
    ("Active Socket: No route to host", said(""), 1, "peer unreachable"),
    ("Active Socket: Connection closed", said(""), 0, "BGP session starting"),
])
def test_bgp_session_down_is_told_apart_without_touching_birds_port(info, sockets, ping_rc, diagnosis):
    symptoms = _session_down(info)
    symptoms["node1"].update({r"^ss -Htn state syn-sent": sockets, r"^ping -c 1": said("", ping_rc)})
    view = fake_view(symptoms)
    assert finding(view, "BGP mesh", "node1").diagnosis.name == diagnosis
    assert not any("/dev/tcp/" in cmd for node in view.nodes.values() for cmd in node.commands)


def test_peer_without_bird_is_named():
    symptoms = _session_down("Active Socket: Connection refused")
    symptoms["node2"] = {r"^docker top calico-node": said(top(bird=False))}
    found = finding(fake_view(symptoms), "BGP mesh", "node1")
    assert found.diagnosis.name == "BGP peer not listening" and found.diagnosis.where.startswith("node2")


def test_a_peer_cut_off_the_private_network_is_unreachable_though_its_bird_is_down_too():
    # Debian VM lane: node2 fell off the private network; its etcd lost quorum, so its calico-node
    # was down as well, and the old order named that ("the peer refuses TCP 179") over the cause.
    symptoms = _session_down("Active Socket: No route to host")
    symptoms["node1"][r"^ping -c 1"] = said("", 1)
    symptoms["node2"] = {r"^docker top calico-node": said(top(bird=False))}
    found = finding(fake_view(symptoms), "BGP mesh", "node1")
    assert found.diagnosis.name == "peer unreachable" and "No route to host" in found.diagnosis.where


def test_wrong_bgp_address_is_named():
    wrong = http('{"node":{"value":"10.0.0.9"}}')
    symptoms = _session_down()
    symptoms["node1"][r"/v2/keys/calico/bgp/v1/host/node2/ip_addr_v4"] = wrong
    symptoms["node2"] = {r"/v2/keys/calico/bgp/v1/host/node2/ip_addr_v4": wrong}
    view = fake_view(symptoms)
    assert finding(view, "BGP mesh", "node1").diagnosis.name == "BGP address"
    assert finding(view, "BGP address", "node2").diagnosis.name == "BGP address"


def test_calicoctl_that_hangs_falls_back_to_bird():
    protocols = f"name proto table state since info\nMesh_{NODE2.ip.replace('.', '_')} BGP master up 09:31:18 " \
                "Established\n"
    view = fake_view({"node1": {r"^/usr/local/bin/calicoctl node status": said("", 124),
                                r"^docker exec calico-node": said(protocols)}})
    found = finding(view, "BGP mesh", "node1")
    assert found.result == PASS and "read from BIRD" in found.seen


def test_without_quorum_the_mesh_is_read_from_bird():
    # Docker (so the double's calicoctl) stalls without quorum: BIRD's own table is asked instead.
    view = fake_view(both({r":2379/health": http('{"health":"false"}', 503)}))
    found = finding(view, "BGP mesh", "node1")
    assert found.result == PASS and "etcd has no quorum" in found.seen
    assert not any("calicoctl" in cmd for cmd in view.nodes["node1"].commands)


@pytest.mark.parametrize("check,key,value,diagnosis", [
    ("IP forwarding", "ip_forward", "0", "IP forwarding off"),
    ("rp_filter", "rp_filter", "2", "rp_filter loose"),
])
def test_sysctls(check, key, value, diagnosis):
    view = fake_view({"node2": {rf"sysctl -n \S*{key}": said(f"{value}\n")}})
    found = finding(view, check, "node2")
    assert found.result == FAIL and found.diagnosis.name == diagnosis


def test_big_packets_lost_is_an_mtu_mismatch():
    view = fake_view({"node1": {r"ping .* -s 1472 -M do": said("", 1)}})
    assert finding(view, "MTU", "node1").diagnosis.name == "MTU mismatch"


class UnreachableNode:
    name, ip = NODE2.name, NODE2.ip

    def run(self, cmd, *, check=False, timeout=0):  # noqa: ARG002
        raise UserError("node2 (127.0.0.1:2222) is unreachable over SSH (ConnectionRefused): is the cluster up?")

    def close(self) -> None:
        pass


def test_an_unreachable_node_is_one_finding_and_the_other_node_is_still_checked():
    view = fake_view()
    view.nodes["node2"] = UnreachableNode()
    found = checks.run(view, ["IP forwarding"])
    assert [(f.check, f.node, f.result) for f in found] == [("SSH", "node2", FAIL), ("IP forwarding", "node1", PASS)]
    assert found[0].diagnosis.name == "node unreachable"


def test_unknown_check_names_are_refused_with_the_known_ones():
    with pytest.raises(UserError, match="unknown check.*known are etcd member"):
        checks.run(fake_view(), ["etcd membr"])


# -- probes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("line,blocks", [
    ("-A INPUT -s 10.0.0.1/32 -p tcp -m tcp --dport 179 -j DROP", True),
    ("-A INPUT -p tcp -m tcp --sport 179 -j REJECT --reject-with icmp-port-unreachable", True),
    ("-A INPUT -p tcp -m multiport --dports 22,179 -j DROP", True),
    ("-A INPUT -p tcp -m tcp --dport 1790 -j DROP", False),
    ("-A INPUT -p tcp -m tcp --dport 179 -j ACCEPT", False),
])
def test_rules_dropping_a_port(line, blocks):
    from fakes import FakeNode

    node = FakeNode(rules={"iptables-save": said(f"*filter\n{line}\nCOMMIT\n")})
    assert bool(probes.rules_dropping_port(node, 179)) is blocks


@pytest.mark.parametrize("out,state", [
    ("tcp-rc=0\n", probes.OPEN), ("tcp-rc=124\n", probes.TIMEOUT),
    ("bash: connect: Connection refused\ntcp-rc=1\n", probes.REFUSED),
    ("bash: connect: No route to host\ntcp-rc=1\n", probes.UNREACHABLE),
])
def test_tcp_port_states(out, state):
    from fakes import FakeNode

    assert probes.tcp_port(FakeNode(rules={"/dev/tcp": said(out)}), "10.0.0.2", 179) == state


def test_bird_protocols_read_like_calicoctl():
    text = ("BIRD 1.6.8 ready.\nname     proto    table    state  since       info\n"
            "kernel1  Kernel   master   up     20:37:42\n"
            "Mesh_192_168_240_130 BGP      master   start  20:39:27    Active   Socket: Connection closed\n")
    assert probes.bird_bgp_peers(text) == [("192.168.240.130", "node-to-node mesh", "start", "20:39:27",
                                            "Active Socket: Connection closed")]


def test_http_probe_splits_status_from_body():
    from fakes import FakeNode

    node = FakeNode(rules={"curl": said('{"health":"true"}\nhttp-status=200')})
    assert probes.http(node, "http://10.0.0.1:2379/health") == probes.HttpAnswer(200, '{"health":"true"}')
    assert not probes.http(FakeNode(rules={"curl": NO_ANSWER}), "http://x").answered


@pytest.mark.parametrize("clock,result", [
    ("09:31:48", WARN),   # up 30 s: a restart a doctor run just missed is still seen
    ("09:33:17", WARN),   # 119 s
    ("09:33:18", PASS),   # BIRD's graceful-restart time has passed
    ("09:46:18", PASS),
])
def test_a_session_younger_than_the_graceful_restart_time_is_a_warning(clock, result):
    view = fake_view({"node1": {r"^docker exec calico-node date": said(clock + "\n")}})
    found = finding(view, "BGP mesh", "node1")
    assert found.result == result, found
    if result == WARN:
        assert found.diagnosis.name == "BGP session new"
        assert found.diagnosis.where == f"node1 <-> {NODE2.ip} Established since 09:31:18"
    assert finding(view, "BGP mesh", "node2").result == PASS  # node2's clock is 15 minutes on


def test_session_age_reads_birds_two_time_formats_and_midnight():
    assert parsers.since_age("09:31:18", "09:31:48") == 30
    assert parsers.since_age("23:59:50", "00:00:20") == 30  # came up before midnight
    assert parsers.since_age("2026-11-30", "09:31:48") is None  # older than 20 h: BIRD prints a date
    assert parsers.since_age("09:31:18", "") is None  # no clock (calico-node went away)


# -- a command that did not run is not a component that is down (issue 22, defect 12) ---------
# POSIX sh (XCU 2.8.2): a command not found exits 127, one found but not executable 126. On CentOS
# 7, sudo's secure_path (/sbin:/bin:/usr/sbin:/usr/bin) leaves out /usr/local/bin: a bare
# calicoctl exits 127 there while calico-node runs perfectly well.
NOT_FOUND, NOT_EXECUTABLE = said("", 127), said("", 126)


@pytest.mark.parametrize("check,node,pattern,answer,old_verdict", [
    ("BGP mesh", "node1", r"calicoctl node status$", NOT_FOUND, "calico-node down"),
    ("BGP mesh", "node2", r"calicoctl node status$", NOT_EXECUTABLE, "calico-node down"),
    ("calico-node", "node1", r"^systemctl is-active calico-node", NOT_FOUND, "calico-node down"),
    ("etcd member", "node2", r"^systemctl is-active etcd", NOT_EXECUTABLE, "etcd member down"),
    ("etcd member", "node1", r"^curl ", NOT_FOUND, "etcd client URL"),
    ("docker cluster store", "node1", r"^docker info", NOT_FOUND, "docker down"),
    ("calico networks shared", "cluster", r"^docker network ls", NOT_FOUND, "docker down"),
    ("libnetwork plugin", "node1", r"^ss -xl", NOT_FOUND, "plugin sockets missing"),
    ("IP forwarding", "node1", r"^sysctl -n", NOT_FOUND, "IP forwarding off"),
    ("MTU", "node1", r"^ping -c 1 ", NOT_FOUND, "peer unreachable"),
    ("BGP port 179", "node1", r"^iptables-save", NOT_FOUND, None),  # old: a pass, "no rule drops 179"
])
def test_a_command_that_cannot_run_is_said_and_not_read_as_the_component_down(check, node, pattern, answer,
                                                                              old_verdict):
    symptoms = both({pattern: answer}) if node == "cluster" else {node: {pattern: answer}}
    found = finding(fake_view(symptoms), check, node if node != "cluster" else "node1")
    assert found.result == FAIL, found.line()
    assert found.diagnosis.name == "command missing", found.line()
    assert old_verdict is None or found.diagnosis.name != old_verdict
    assert "missing or cannot run" in found.line() and "is not running" not in found.line()
    assert f"exit {answer('')[0]}" in found.seen


def test_a_missing_calicoctl_is_not_calico_process_is_not_running():
    # The lab with CentOS 7's secure_path: calicoctl exits 127, everything else is healthy.
    found = finding(fake_view(both({r"calicoctl node status$": NOT_FOUND})), "BGP mesh", "node1")
    assert "Calico process is not running" not in found.seen
    assert found.diagnosis.where.startswith("node1: `") and "calicoctl" in found.seen


class SudoRefusing:
    """A node whose sudo asks for a password (sudo -n: exit 1, `sudo: a password is required`)."""
    name, ip = NODE2.name, NODE2.ip

    def run(self, cmd, *, check=False, timeout=0):  # noqa: ARG002
        from calicolab.core.remote import CommandResult
        return CommandResult(self.name, cmd, 1, "", "sudo: a password is required\n")

    def close(self) -> None:
        pass


def test_sudo_refusing_is_one_finding_that_says_so_and_the_other_node_is_still_checked():
    view = fake_view()
    view.nodes["node2"] = SudoRefusing()
    found = checks.run(view, ["IP forwarding"])
    assert [(f.check, f.node, f.result) for f in found] == [("SSH", "node2", FAIL), ("IP forwarding", "node1", PASS)]
    assert found[0].diagnosis.name == "command missing" and "sudo" in found[0].seen


def test_tcp_probe_whose_timeout_or_bash_is_missing_is_not_a_blocked_port():
    from fakes import FakeNode

    from calicolab.core.remote import CommandUnavailable
    node = FakeNode(rules={"/dev/tcp": said("sh: 1: timeout: not found\ntcp-rc=127\n")})
    with pytest.raises(CommandUnavailable, match="timeout: not found"):
        probes.tcp_port(node, "10.0.0.2", 2380)


@pytest.mark.parametrize(("factor", "at_once"), [(1.0, 2), (3.0, 1)])
def test_a_nodes_checks_run_at_once_and_report_in_their_order(monkeypatch, factor, at_once):
    # Each check waits briefly for a second one to be in flight on its node: at once on the lab,
    # one after another on emulated VMs (a deadline factor over 1), findings in CHECKS order.
    lock = threading.Condition()
    flying: dict[str, int] = {}
    most: dict[str, int] = {}

    def slow(name: str):
        def per_node(_view, node) -> Finding:
            with lock:
                flying[node.name] = flying.get(node.name, 0) + 1
                most[node.name] = max(most.get(node.name, 0), flying[node.name])
                lock.notify_all()
                lock.wait_for(lambda: flying[node.name] >= 2, timeout=0.3)
                flying[node.name] -= 1
            return Finding(name, node.name, PASS, "seen")
        return per_node

    names = ("first", "second", "third", "fourth")
    monkeypatch.setattr(checks, "CHECKS", tuple(Check(n, per_node=slow(n)) for n in names))
    monkeypatch.setattr(checks, "CHECK_NAMES", names)
    deadlines.apply(factor)
    try:
        found = checks.run(fake_view())
    finally:
        deadlines.apply(1.0)
    assert [(f.check, f.node) for f in found] == [(n, s.name) for n in names for s in CFG.nodes]
    assert {s.name: min(most[s.name], 2) for s in CFG.nodes} == {s.name: at_once for s in CFG.nodes}

"""Guide section 6: calico-node runs on both nodes, the BGP mesh is Established, and
Calico's registration in etcd matches the nodes."""

import json

from calicolab.core.polling import Timeout, wait_for
from calicolab.diagnose import calico as diag_calico
from calicolab.diagnose import diagnoses
from calicolab.diagnose.engine import ClusterView
from calicolab.stack import etcd_query, parsers
from e2e import expect, guide

BGP_DEADLINE = 30  # BIRD retries a refused or lost session every 5 s
RUNNING_DEADLINE = 10  # calico-node may still be starting right after provisioning


def test_calico_node_unit_is_active(node):
    state = node.run("systemctl is-active calico-node").stdout.strip()
    expect.equal(f"{node.name}: calico-node.service", state, "active",
                 diagnoses.CALICO_NOT_RUNNING.text())


def test_calico_node_logged_started(node):
    logs = node.run("docker logs calico-node 2>&1").stdout
    lines = [line for line in guide.CALICO_LOG_LINES if line in logs]
    expect.equal(f"{node.name}: calico-node log", lines, list(guide.CALICO_LOG_LINES),
                 diagnoses.CALICO_NOT_RUNNING.text() + f" (last lines: {logs.strip().splitlines()[-3:] or 'none'})")


def _status(node) -> tuple[parsers.CalicoNodeStatus, str]:
    text = node.run("calicoctl node status").stdout
    return parsers.calicoctl_node_status(text), text


def test_calicoctl_node_status_shows_mesh_established_and_no_ipv6_peers(node, cluster, nodes):
    peers = cluster.peers_of(node.name)
    view = ClusterView(cluster, dict(nodes))  # probes the nodes for the cause, only on a failure
    status, _ = _poll(node, lambda s: s[0].running, RUNNING_DEADLINE)
    if not status.running:
        expect.fail(f"{node.name}: calicoctl node status", guide.CALICO_RUNNING,
                    "Calico process is not running.", diag_calico.calico_down_cause(view, node).text())
    status, text = _poll(node, lambda s: parsers.mesh_established(s[0], [p.ip for p in peers]), BGP_DEADLINE)
    problems = parsers.mesh_problems(status, [p.ip for p in peers])
    if problems:
        rows = {r.address: r for r in status.ipv4_peers}
        peer = next((p for p in peers if not (p.ip in rows and rows[p.ip].established)), peers[0])
        row = rows.get(peer.ip)
        cause = diag_calico.session_cause(view, node, peer, row.info if row else "")
        expect.fail(f"{node.name}: IPv4 BGP peers (waited up to {BGP_DEADLINE} s)",
                    f"exactly {', '.join(p.ip for p in peers)}: {guide.PEER_TYPE}, {guide.PEER_STATE}, "
                    f"{guide.PEER_INFO}", "; ".join(problems), cause.text())
    expect.true(f"{node.name}: calicoctl node status, IPv6 section", guide.NO_IPV6_PEERS in text,
                guide.NO_IPV6_PEERS, text.strip().splitlines()[-2:] or "no output",
                "calico-node runs with an IPv6 address (IP6) the guide leaves empty")


def _poll(node, ok, deadline: float) -> tuple[parsers.CalicoNodeStatus, str]:
    """The status (and its text) once ok() holds, or the last seen at the deadline (the caller
    reports it)."""
    try:
        return wait_for(lambda: _status(node), ok, f"{node.name}: calicoctl node status", timeout=deadline)
    except Timeout as err:
        return err.last if isinstance(err.last, tuple) else _status(node)


def test_calicoctl_get_node_lists_every_node(node, cluster):
    res = node.run("calicoctl get node")
    expect.command_ok(res, "calicoctl cannot reach etcd (ETCD_ENDPOINTS)")
    lines = [line.split() for line in res.stdout.splitlines() if line.strip()]
    expect.equal(f"{node.name}: calicoctl get node header", lines[0][:1] if lines else [], ["NAME"],
                 "calicoctl printed something other than its node table")
    names = sorted(words[0] for words in lines[1:])
    expect.equal(f"{node.name}: calicoctl get node", names, sorted(n.name for n in cluster.nodes),
                 "a node's calico-node never registered (check its unit and log)")


def test_bgp_address_key_is_the_node_ip(node, spec):
    seen = etcd_query.v2_get(node, spec.ip, f"/calico/bgp/v1/host/{spec.name}/ip_addr_v4")
    expect.equal(f"/calico/bgp/v1/host/{spec.name}/ip_addr_v4", seen, spec.ip, diagnoses.BGP_WRONG_IP.text())


def test_default_pool_exists(node, spec):
    value = json.loads(etcd_query.v2_get(node, spec.ip, "/calico/v1/ipam/v4/pool/192.168.0.0-16") or "{}")
    expect.equal("default pool /calico/v1/ipam/v4/pool/192.168.0.0-16", value.get("cidr"), "192.168.0.0/16",
                 "calico-node did not create its default pool (NO_DEFAULT_POOLS set?)")


def test_libnetwork_plugin_sockets_exist(node):
    for sock in ("calico", "calico-ipam"):
        res = node.run(f"test -S /run/docker/plugins/{sock}.sock")
        expect.true(f"{node.name}: /run/docker/plugins/{sock}.sock", res.ok, "a socket", "missing",
                    'without it Docker says `plugin "calico" not found`: calico-node is not running')

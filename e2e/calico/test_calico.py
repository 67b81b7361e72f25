"""Guide section 6: calico-node runs on both nodes, the BGP mesh is Established, and
Calico's registration in etcd matches the nodes."""

import json

from calicolab.core.polling import Timeout, wait_for
from calicolab.diagnose import calico as diag_calico
from calicolab.diagnose import diagnoses
from calicolab.diagnose.engine import ClusterView
from calicolab.stack import etcd_query, parsers
from e2e import expect

BGP_DEADLINE = 30  # BIRD retries a refused or lost session every 5 s
RUNNING_DEADLINE = 10  # calico-node may still be starting right after provisioning


def test_calico_node_unit_is_active(node):
    state = node.run("systemctl is-active calico-node").stdout.strip()
    expect.equal(f"{node.name}: calico-node.service", state, "active",
                 diagnoses.CALICO_NOT_RUNNING.text())


def test_calico_node_logged_started(node):
    logs = node.run("docker logs calico-node 2>&1").stdout
    expect.true(f"{node.name}: calico-node log", "Calico node started successfully" in logs,
                "Calico node started successfully", logs.strip().splitlines()[-3:] or "no log",
                diagnoses.CALICO_NOT_RUNNING.text())


def _status(node) -> parsers.CalicoNodeStatus:
    return parsers.calicoctl_node_status(node.run("calicoctl node status").stdout)


def test_calicoctl_node_status_shows_mesh_established(node, cluster, nodes):
    peers_wanted = {p.ip for p in cluster.peers_of(node.name)}
    view = ClusterView(cluster, dict(nodes))  # probes the nodes for the cause, only on a failure

    def good(status: parsers.CalicoNodeStatus) -> bool:
        rows = {p.address: p for p in status.ipv4_peers}
        return status.running and all(
            ip in rows and rows[ip].established and rows[ip].peer_type == "node-to-node mesh"
            for ip in peers_wanted)

    status = _poll(node, lambda s: s.running, RUNNING_DEADLINE)
    if not status.running:
        expect.fail(f"{node.name}: calicoctl node status", "Calico process is running.",
                    "Calico process is not running.", diag_calico.calico_down_cause(view, node).text())
    status = _poll(node, good, BGP_DEADLINE)
    rows = {p.address: p for p in status.ipv4_peers}
    for ip in sorted(peers_wanted):
        row = rows.get(ip)
        if row and row.established and row.peer_type == "node-to-node mesh":
            continue
        seen = f"{row.peer_type}, {row.state}, {row.info}" if row else "no row for this peer"
        peer = next(p for p in cluster.peers_of(node.name) if p.ip == ip)
        cause = diag_calico.session_cause(view, node, peer, row.info if row else "")
        expect.fail(f"{node.name}: BGP session to peer {ip} (waited up to {BGP_DEADLINE} s)",
                    "node-to-node mesh, up, Established", seen, cause.text())


def _poll(node, ok, deadline: float) -> parsers.CalicoNodeStatus:
    """The status once ok() holds, or the last one seen at the deadline (the caller reports it)."""
    try:
        return wait_for(lambda: _status(node), ok, f"{node.name}: calicoctl node status", timeout=deadline)
    except Timeout as err:
        return err.last if isinstance(err.last, parsers.CalicoNodeStatus) else _status(node)


def test_calicoctl_get_node_lists_every_node(node, cluster):
    res = node.run("calicoctl get node")
    expect.command_ok(res, "calicoctl cannot reach etcd (ETCD_ENDPOINTS)")
    names = sorted(line.strip() for line in res.stdout.splitlines()[1:] if line.strip())
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

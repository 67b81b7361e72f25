"""Guide section 6: calico-node runs on both nodes, the BGP mesh is Established, and
Calico's registration in etcd matches the nodes."""

import json

from calicolab.core.polling import Timeout, wait_for
from calicolab.diagnose import calico as diag_calico
from calicolab.diagnose import diagnoses
from calicolab.diagnose.engine import ClusterView
from calicolab.stack import etcd_query, parsers
from e2e import expect, guide, state_reads

BGP_DEADLINE = 30  # BIRD retries a refused or lost session every 5 s
RUNNING_DEADLINE = 10  # calico-node may still be starting right after provisioning


def _run(node, cmd: str):
    """A node command that must have run: a missing one (CentOS 7's sudo secure_path has no
    /usr/local/bin) fails as "the command is missing", never as Calico being down."""
    __tracebackhide__ = True
    return expect.ran(node.run(cmd))


def test_calico_node_unit_is_active(node):
    state = _run(node, state_reads.CALICO_NODE_ACTIVE).stdout.strip()
    expect.equal(f"{node.name}: calico-node.service", state, "active",
                 diagnoses.CALICO_NOT_RUNNING.text())


def test_calico_node_logged_started(node):
    logs = _run(node, "docker logs calico-node 2>&1").stdout
    lines = [line for line in guide.CALICO_LOG_LINES if line in logs]
    expect.equal(f"{node.name}: calico-node log", lines, list(guide.CALICO_LOG_LINES),
                 diagnoses.CALICO_NOT_RUNNING.text() + f" (last lines: {logs.strip().splitlines()[-3:] or 'none'})")


def _status(node) -> tuple[parsers.CalicoNodeStatus, str]:
    text = _run(node, state_reads.NODE_STATUS).stdout
    return parsers.calicoctl_node_status(text), text


def test_calicoctl_node_status_shows_mesh_established_and_no_ipv6_peers(node, cluster, nodes):
    peers = cluster.peers_of(node.name)
    meshed = lambda s: parsers.mesh_established(s[0], [p.ip for p in peers])  # noqa: E731
    view = ClusterView(cluster, dict(nodes))  # probes the nodes for the cause, only on a failure
    status, text = _poll(node, lambda s: s[0].running, RUNNING_DEADLINE)
    if not status.running:
        expect.fail(f"{node.name}: calicoctl node status", guide.CALICO_RUNNING,
                    "Calico process is not running.", diag_calico.calico_down_cause(view, node).text())
    if not meshed((status, text)):  # one calicoctl run less where the mesh is up already (VMs: 20 s)
        status, text = _poll(node, meshed, BGP_DEADLINE)
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
    res = node.run(state_reads.GET_NODE)
    expect.command_ok(res, "calicoctl cannot reach etcd (ETCD_ENDPOINTS)")
    lines = [line.split() for line in res.stdout.splitlines() if line.strip()]
    expect.equal(f"{node.name}: calicoctl get node header", lines[0][:1] if lines else [], ["NAME"],
                 "calicoctl printed something other than its node table")
    names = sorted(words[0] for words in lines[1:])
    expect.equal(f"{node.name}: calicoctl get node", names, sorted(n.name for n in cluster.nodes),
                 "a node's calico-node never registered (check its unit and log)")


def test_bgp_address_key_is_the_node_ip(node, spec):
    key = state_reads.bgp_address_key(spec.name)
    expect.equal(key, etcd_query.v2_get(node, spec.ip, key), spec.ip, diagnoses.BGP_WRONG_IP.text())


def _json(node, spec, key: str):
    text = etcd_query.v2_get(node, spec.ip, key)
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return text


def test_default_pool_is_calicos(node, spec):
    expect.equal(guide.DEFAULT_POOL_KEY, _json(node, spec, guide.DEFAULT_POOL_KEY), guide.DEFAULT_POOL,
                 "calico-node did not create its default pool as startup.go does (NAT outgoing on, IPIP off); "
                 "NO_DEFAULT_POOLS or CALICO_IPV4POOL_* set?")


def test_ipv6_pool_where_the_host_has_ipv6(node, spec):
    has_ipv6 = _run(node, state_reads.HOST_HAS_IPV6).ok
    expected = guide.IPV6_POOL if has_ipv6 else None
    expect.equal(f"{guide.IPV6_POOL_KEY} (host has IPv6: {has_ipv6})", _json(node, spec, guide.IPV6_POOL_KEY),
                 expected, "startup.go creates the IPv6 pool exactly when /proc/sys/net/ipv6 exists")


def test_calicoctl_lists_the_pools_with_nat_outgoing(node):
    res = node.run(state_reads.GET_POOLS)
    expect.command_ok(res, "calicoctl cannot read the pools from etcd")
    # calicoctl v1.6.1 prints v1 ipPool resources; false fields are omitted (omitempty).
    blocks = [b for b in res.stdout.split("- apiVersion: v1") if b.strip()]
    seen = {}
    for block in blocks:
        cidr = next((line.split(":", 1)[1].strip() for line in block.splitlines() if "cidr:" in line), "?")
        seen[cidr] = "nat-outgoing: true" in block
    expect.equal(f"{node.name}: calicoctl get ippool -o yaml (cidr: nat-outgoing)", seen.get("192.168.0.0/16"),
                 True, f"the default pool has no NAT outgoing (seen {seen})")


def test_startup_wrote_calicos_cluster_and_host_keys(node, spec):
    for key, want in guide.CLUSTER_KEYS.items():
        expect.equal(key, etcd_query.v2_get(node, spec.ip, key), want, "calico-node's startup did not run to the end")
    for name, want in guide.HOST_CONFIG.items():
        key = state_reads.host_config_key(spec.name, name)
        expect.equal(key, etcd_query.v2_get(node, spec.ip, key), want, "startup.go writes it for every node")
    # IP given without a mask: network_v4 is the /32
    for key, want in ((state_reads.bird_ip_key(spec.name), spec.ip),
                      (state_reads.network_v4_key(spec.name), f"{spec.ip}/32")):
        expect.equal(key, etcd_query.v2_get(node, spec.ip, key), want, "the node's registration differs from "
                     "what calico/node v2.6.1 writes for IP=<address>")
    for key in guide.NEVER_WRITTEN:
        expect.equal(key, etcd_query.v2_get(node, spec.ip, key), None, "calico/node never writes this key")


def test_libnetwork_plugin_sockets_listen(node):
    listeners = _run(node, state_reads.UNIX_LISTENERS).stdout.split()
    for path in state_reads.PLUGIN_SOCKETS:
        listening = path in listeners
        expect.true(f"{node.name}: {path} listening", listening, "a listening socket",
                    "stale file" if _run(node, state_reads.socket_file(path)).ok else "missing",
                    'without it Docker says `plugin "calico" not found`: calico-node is not running')


def test_calico_services_run_as_separate_processes(node):
    # calico/node runs felix, BIRD and bird6 under runit: separate processes, BIRD with -R.
    top = _run(node, state_reads.CALICO_PROCESSES).stdout
    names = {line.split()[1] for line in top.splitlines()[1:] if len(line.split()) > 1}
    for name in guide.CALICO_PROCESSES:
        expect.true(f"{node.name}: process {name} in calico-node", name in names, "running", sorted(names),
                    "a calico/node service is not running (see /var/log/calico/<service>/current)")
    bird = [line for line in top.splitlines() if " bird " in f" {line} " and "bird.ctl" in line]
    expect.true(f"{node.name}: BIRD's command line", any(" -R " in f" {line} " for line in bird),
                "bird -R -s /var/run/calico/bird.ctl -d -c .../bird.cfg", bird,
                "BIRD without -R drops the kernel routes' graceful-restart recovery")


def test_each_service_logs_to_var_log_calico(node):
    for service in guide.CALICO_SERVICES:
        path = f"{guide.CALICO_LOG_DIR}/{service}/current"
        size = _run(node, f"stat -c %s {path} 2>/dev/null").stdout.strip()
        expect.true(f"{node.name}: {path}", size.isdigit() and int(size) > 0, "a non-empty svlogd file",
                    size or "missing", "the service never started, or its log folder is not mounted "
                    "(-v /var/log/calico:/var/log/calico)")


def test_felix_programs_calicos_chains(node):
    rules = _run(node, "iptables-save").stdout.splitlines()
    for chain in ("FORWARD", "INPUT", "OUTPUT"):
        # Felix inserts its jump at the top; a restarted Docker may sit above it until felix's refresh.
        jump = next((r for r in rules if r.startswith(f"-A {chain} ") and r.endswith(f"-j cali-{chain}")), "")
        expect.true(f"{node.name}: {chain} jumps to cali-{chain}", bool(jump), f"-A {chain} ... -j cali-{chain}",
                    [r for r in rules if r.startswith(f"-A {chain} ")][:3] or "no rules",
                    "felix is not running or lost its rules")
    nat = _run(node, "iptables-save -t nat").stdout
    expect.true(f"{node.name}: nat cali-nat-outgoing", "-A cali-nat-outgoing" in nat and "MASQUERADE" in nat,
                "a MASQUERADE rule for the masquerade pool", "absent",
                "felix does no NAT outgoing: workload traffic leaves with its pool address")

"""Guide section 4: a two-member etcd cluster, one leader, healthy, shared keys."""

import uuid

from calicolab.core import versions
from calicolab.diagnose import etcd as diag_etcd
from calicolab.diagnose.engine import ClusterView
from calicolab.stack import etcd_query
from e2e import expect, guide, state_reads


def _members(node, cluster):
    return etcd_query.members(node, cluster.versions.etcd, cluster.etcd_endpoints)


def test_etcd_has_exactly_the_two_guide_members(node, cluster):
    members = _members(node, cluster)
    seen = sorted((m.name, m.peer_urls, m.client_urls) for m in members)
    scheme = cluster.etcd_scheme  # client URLs are https with etcd_tls; peers stay http
    want = sorted((n.name, (f"http://{n.ip}:{guide.ETCD_PEER_PORT}",), (f"{scheme}://{n.ip}:{guide.ETCD_CLIENT_PORT}",))
                  for n in cluster.nodes)
    expect.equal(f"etcd member list seen from {node.name}", seen, want,
                 "a member did not join: wrong ETCD_INITIAL_CLUSTER, 2380 blocked, or a stale "
                 "data dir (`member ... has already been bootstrapped`)")
    expect.equal("members in the guide's cluster", len(members), guide.ETCD_MEMBERS)


def test_etcd_has_exactly_one_leader_and_every_member_agrees(nodes, cluster):
    # Each member is asked through its own client URL only: etcdctl with every endpoint would
    # ask whichever member answers first, the same question twice.
    leaders = {}
    for spec in cluster.nodes:
        own = state_reads.own_endpoint(cluster, spec)
        leaders[spec.name] = sorted(m.name for m in etcd_query.members(nodes[spec.name], cluster.versions.etcd, own)
                                    if m.is_leader)
    for name, seen in leaders.items():
        expect.equal(f"etcd leaders in {name}'s own view", len(seen), guide.ETCD_LEADERS,
                     "no leader: no quorum (peer down or 2380 blocked: `publish error`)")
    expect.equal("the leader every member names", len({tuple(v) for v in leaders.values()}), 1,
                 f"split view of the cluster: members disagree on the leader ({leaders})")


def test_etcd_cluster_is_healthy(node, cluster, nodes):
    health = etcd_query.health(node, cluster.versions.etcd, cluster.etcd_endpoints)
    if health.verdict != "healthy":
        cause = diag_etcd.quorum_cause(ClusterView(cluster, dict(nodes)))
        expect.fail(f"etcd cluster health from {node.name}", "healthy", health.verdict,
                    cause.text() if cause else "a member is down or unreachable; see `journalctl -u etcd`")


def test_etcd_key_written_on_node1_is_read_on_node2(nodes, cluster):
    first, second = cluster.nodes[0], cluster.nodes[1]
    key, value = f"/calicolab-e2e/{uuid.uuid4().hex}", uuid.uuid4().hex
    writer = nodes[first.name]
    expect.command_ok(etcd_query.v2_put(writer, first.ip, key, value),
                      "the v2 API is off (etcd 3.4+ needs --enable-v2) or the client URL is wrong")
    try:
        seen = etcd_query.v2_get(nodes[second.name], second.ip, key)
        expect.equal(f"{key} read through {second.name}'s client URL", seen, value,
                     "the members do not replicate: they are two separate clusters")
    finally:
        etcd_query.v2_delete(writer, first.ip, key)


def test_etcd_v2_api_answers(node, spec, cluster):
    res = etcd_query.client_request(node, spec.ip, "/v2/keys/", "-s -o /dev/null -w '%{http_code}'")
    cause = ("etcd 3.4+ without --enable-v2 (ETCD_ENABLE_V2=true)"
             if versions.etcd_needs_v2_flag(cluster.versions.etcd) else "etcd is not serving clients")
    expect.equal(f"GET /v2/keys on {spec.name}", res.stdout.strip(), "200", cause)


def test_etcd_version_is_the_configured_one(node, spec, cluster):
    res = etcd_query.client_request(node, spec.ip, "/version", "-s")
    expect.true(f"etcd version on {spec.name}", f'"etcdserver":"{cluster.versions.etcd}"' in res.stdout,
                cluster.versions.etcd, res.stdout.strip(), "a different etcd package is installed")

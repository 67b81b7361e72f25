"""Guide section 5: Docker uses the node's etcd as its cluster store."""

from calicolab.stack import etcd_query, parsers
from e2e import expect, state_reads


def test_docker_info_shows_the_cluster_store(node, spec):
    info = node.run("docker info 2>/dev/null")
    expect.command_ok(info, "the Docker engine is not running: `systemctl status docker`")
    expect.equal(f"{spec.name}: docker info Cluster Store", parsers.docker_info_cluster_store(info.stdout),
                 f"etcd://{spec.ip}:2379",
                 "/etc/docker/daemon.json lacks cluster-store, or Docker was not restarted")


def test_docker_version_is_the_configured_one(node, spec, cluster):
    seen = node.run(state_reads.DOCKER_VERSION).stdout.strip()
    expect.true(f"{spec.name}: Docker server version", seen.startswith(cluster.versions.docker),
                cluster.versions.docker, seen, "a different Docker package is installed")


def test_docker_writes_its_data_into_etcd(node, spec):
    res = etcd_query.client_request(node, spec.ip, "/v2/keys/docker/network/v1.0/?recursive=true", "-s")
    expect.true(f"{spec.name}: Docker's keys in etcd", '"key":"/docker/network/v1.0' in res.stdout,
                "/docker/network/v1.0/... keys", res.stdout.strip()[:200] or "nothing",
                "Docker cannot reach its cluster store (etcd down, or the v2 API off)")

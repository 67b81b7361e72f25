"""Checks of Docker's cluster store and the shared Calico networks (guide sections 5 and 7).
"""

from __future__ import annotations

from calicolab.diagnose.diagnoses import (
    DOCKER_DOWN,
    DOCKER_STORE_MISSING,
    DOCKER_STORE_UNREACHABLE,
    ETCD_V2_OFF,
    NETWORK_NOT_SHARED,
    Finding,
)
from calicolab.diagnose.engine import ClusterView, failed, passed
from calicolab.diagnose.etcd import etcd_member_cause, v2_off
from calicolab.stack import parsers, probes
from calicolab.stack.probes import NodeLike


def check_docker_store(view: ClusterView, node: NodeLike) -> Finding:
    info = probes.ask(node, "docker info 2>/dev/null", timeout=60)
    if not info.ok:
        return failed("docker cluster store", node.name, "`docker info` failed", DOCKER_DOWN.at(node.name))
    store = parsers.docker_info_cluster_store(info.stdout)
    if not store:
        return failed("docker cluster store", node.name, "no Cluster Store in `docker info`",
                     DOCKER_STORE_MISSING.at(node.name))
    host = store.split("://", 1)[-1].split(",")[0].split("/")[0]
    ip = host.split(":")[0]
    answer = view.http(node, f"{view.scheme}://{host}/v2/keys/")
    if answer.status == 200:
        return passed("docker cluster store", node.name, f"{store} serves /v2/keys")
    owner = next((n for n in view.nodes.values() if n.ip == ip), None)
    if v2_off(answer):
        cause = ETCD_V2_OFF.at(owner.name if owner else ip)
    else:
        cause = (etcd_member_cause(view, owner) if owner else None) or DOCKER_STORE_UNREACHABLE.at(node.name)
    return failed("docker cluster store", node.name, f"{store}: GET /v2/keys/ -> {answer.status or 'no answer'}",
                 cause)

def check_networks_shared(view: ClusterView) -> Finding:
    seen: dict[str, tuple[str, ...]] = {}
    for name, node in view.nodes.items():
        res = probes.ask(node, "docker network ls --filter driver=calico --format '{{.ID}} {{.Name}}'")
        if not res.ok:
            return failed("calico networks shared", name, "`docker network ls` failed", DOCKER_DOWN.at(name))
        seen[name] = tuple(sorted(line.strip() for line in res.stdout.splitlines() if line.strip()))
    if len(set(seen.values())) == 1:
        count = len(next(iter(seen.values())))
        return passed("calico networks shared", "cluster", f"the same {count} Calico network(s) on every node")
    listed = "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in seen.items())
    return failed("calico networks shared", "cluster", listed, NETWORK_NOT_SHARED)

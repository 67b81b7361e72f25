"""Known hazards on an upgrade path, named before anything starts, each with its source.

The data is HAZARDS below, in one place. A hazard is crossed when the path moves a component
from below `at` to `at` or above (`only` narrows it to versions the path lands on, for a bug
of given releases; `until` makes it a property of every version from `at` up to it, crossed by
any path that lands on one, as each calico-node restart on the way does). Refused ones are also
refused by calicolab/core/versions.py (its RULES stay the refusal; this says what else is
known). An allowed hazard may name a check the rehearsal runs for it after the upgrade (CHECKS),
cheap and read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from calicolab.core import versions
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.core.remote import Node
from calicolab.stack import etcd_query
from provision import etcd as etcd_section


@dataclass(frozen=True)
class Hazard:
    id: str
    component: str
    at: str  # crossed when the path goes from below this version to it or above
    what: str
    source: str
    refused: bool = False
    only: tuple[str, ...] = ()  # when set: only if the path lands on one of these versions
    check: str = ""  # a key of CHECKS
    before: bool = False  # the check runs before the upgrade starts (and stops it) instead of after
    until: str = ""  # when set: present in [at, until), crossed by a path landing on such a version


HAZARDS: tuple[Hazard, ...] = (
    Hazard("etcd-3.4-v2-off", "etcd", "3.4.0",
           "etcd 3.4 serves no v2 API unless started with --enable-v2 (its default became false); "
           "Docker's cluster store and Calico 2.6 read only v2",
           "etcd-io/etcd@v3.4.0:Documentation/upgrades/upgrade_3_4.md (Make etcd --enable-v2=false default)",
           check="v2-enabled"),
    Hazard("etcd-3.5-auth-wal", "etcd", "3.5.0",
           "etcd 3.5 changes the format of WAL entries related to auth: with auth enabled, a rolling "
           "upgrade from 3.4 or older is not supported",
           "https://etcd.io/docs/v3.5/upgrades/upgrade_3_5/ (upgrade checklists; etcd-io/etcd#11943)",
           check="auth-disabled", before=True),
    Hazard("etcd-3.5-no-migrate", "etcd", "3.5.0",
           "etcd 3.5 removed `etcdctl migrate`: v2 data can no longer be moved into v3 with 3.5's tools "
           "(this stack keeps its data in v2, which 3.5 still serves with --enable-v2)",
           "https://etcd.io/docs/v3.4/how-to-migrate/ (removed in v3.5.0, etcd-io/etcd#12971)"),
    Hazard("etcd-3.5.26-v2-routing", "etcd", "3.5.26",
           "etcd 3.5.26 with --enable-v2 routes /v2/keys requests to the gRPC handler (clients get EOF); "
           "reported over https client URLs",
           "etcd-io/etcd#21249 (closed; fix proposed in etcd-io/etcd#21240)", only=("3.5.26",),
           check="v2-keys-answer"),
    Hazard("etcd-3.6-no-v2", "etcd", "3.6.0",
           "etcd 3.6 removed the v2 API, and needs every member on 3.5.26 or later first",
           "https://etcd.io/docs/v3.6/upgrades/upgrade_3_6/ (Update 3.5; V2 Store); "
           "https://etcd.io/blog/2025/zombie_members_upgrade/", refused=True),
    Hazard("docker-23-no-cluster-store", "docker", "23.0.0",
           "Docker 23 removed --cluster-store, so no global-scope network (Calico's) can exist",
           "docker/cli@v23.0.0:docs/deprecated.md (--cluster-store and --cluster-advertise: removed in v23.0)",
           refused=True),
    Hazard("calico-3-data-migration", "calico", "3.0.0",
           "Calico 3 needs its etcd data migrated (calico-upgrade, v2 keys to the v3 data model) and "
           "dropped the Docker libnetwork driver",
           "projectcalico/calico-upgrade (the etcdv2 -> etcdv3 data migration tool of Calico 3.0); "
           "https://docs.mirantis.com/mcp/q4-18/mcp-operations-guide/update-upgrade/major-upgrade/k8s-update/"
           "upgrade-calico.html (2.6 -> 3.3 needs the etcd schema migration)", refused=True),
    Hazard("calico-2.6-bgp-collision", "calico", "v2.6.0",
           "every calico-node restart (an upgrade restarts each node's) may lose the restarted node's "
           "first new BGP session to a connection collision: Calico 2.6's node-to-node mesh connects both "
           "ways, both BIRDs connect at once, and BIRD 1.6 drops one session (shape A: taken for a graceful "
           "restart; shape B: Cease 7), flushing the routes the peer kept for 4 to 12 s; the rehearsal "
           "tells each drop from the BIRD logs and judges it by `calico-node-restart under bgp-collision`",
           "BIRD 1.6 proto/bgp/bgp.c bgp_incoming_connection, proto/bgp/packets.c bgp_rx_open; fixed in "
           "Calico 3.4 by projectcalico/node 1183be5 (PR #79, one-way mesh connections) and 21b6641 (connect "
           "delay 2 s); recorded: tests/unit/fixtures/bird_collision/README.md", until="v3.4.0"),
)


def crossed(component: str, current: str, path: list[str], hazards: tuple[Hazard, ...] = HAZARDS) -> list[Hazard]:
    """The hazards a path of versions (after `current`, in order) crosses for one component."""
    found = []
    here = versions.parse(current)
    for hazard in hazards:
        if hazard.component != component:
            continue
        at = versions.parse(hazard.at)
        if hazard.until:
            if any(at <= versions.parse(v) < versions.parse(hazard.until) for v in path):
                found.append(hazard)
        elif hazard.only:
            if any(v in hazard.only for v in path):
                found.append(hazard)
        elif here < at and any(versions.parse(v) >= at for v in path):
            found.append(hazard)
    return found


def report_lines(component: str, current: str, target: str, provider: str) -> tuple[list[Hazard], list[str]]:
    """The hazards from current to target and one line each. The path is computed without the
    refusal rules (a refused target is named here first, then refused by them)."""
    if versions.parse(target) <= versions.parse(current):
        path = [target]  # the same version again is a restart at it: what holds there is crossed
    else:
        try:
            path = versions.upgrade_path(component, current, target, provider)
        except UserError:  # an unavailable target: judge the target alone
            path = [target]
    found = crossed(component, current, path)
    head = f"hazards on {component} {current} -> {target} (via {', '.join(path) or 'nothing'}): "
    if not found:
        return found, [head + "none known"]
    lines = [head + str(len(found))]
    for h in found:
        when = "before" if h.before else "after"
        verdict = "REFUSED" if h.refused else (f"checked {when} the upgrade: {h.check}" if h.check else "noted")
        lines.append(f"  [{verdict}] {h.id}: {h.what}. Source: {h.source}")
    return found, lines


# -- the checks a rehearsal adds -------------------------------------------------------------------

def _v2_enabled(cfg: ClusterConfig, nodes: list[Node]) -> str:
    bad = [n.name for n in nodes if 'ETCD_ENABLE_V2="true"' not in n.run(f"cat {etcd_section.CONF}").stdout]
    return f"ETCD_ENABLE_V2 missing from {etcd_section.CONF} on {', '.join(bad)}" if bad else ""


def _auth_disabled(cfg: ClusterConfig, nodes: list[Node]) -> str:
    out = etcd_query.client_request(nodes[0], cfg.node(nodes[0].name).ip, "/v2/auth/enable", "-sS -m 5").stdout
    return "" if '"enabled":false' in out.replace(" ", "") else f"v2 auth is not off: {out.strip()[:120]}"


def _v2_keys_answer(cfg: ClusterConfig, nodes: list[Node]) -> str:
    bad = [n.name for n in nodes if not etcd_query.client_request(
        n, cfg.node(n.name).ip, "/v2/keys/calico", "-sS -m 5 -f -o /dev/null").ok]
    return f"/v2/keys does not answer on {', '.join(bad)}" if bad else ""


CHECKS: dict[str, Callable[[ClusterConfig, list[Node]], str]] = {
    "v2-enabled": _v2_enabled, "auth-disabled": _auth_disabled, "v2-keys-answer": _v2_keys_answer,
}


def run_checks(found: list[Hazard], cfg: ClusterConfig, nodes: list[Node], before: bool) -> dict[str, str]:
    """Each allowed hazard's check of that phase: '' when it holds, else what is wrong."""
    return {h.id: CHECKS[h.check](cfg, nodes) for h in found if h.check and not h.refused and h.before == before}

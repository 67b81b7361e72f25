"""The checks behind `invoke doctor` and the fault-injection tests, in the order they run.

Each check runs against the live nodes (calicolab.core.remote.Node, or tests' fake nodes) and
returns a Finding with the named diagnosis (diagnoses.py) that explains a failure; a failing
check looks for the root cause (calico-node is down *because* etcd has no quorum), not only the
symptom. The checks live by domain: etcd.py, docker.py, calico.py, host.py; engine.py runs them.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from calicolab.core.deadlines import deadline_factor
from calicolab.core.errors import UserError
from calicolab.core.remote import CommandUnavailable
from calicolab.diagnose import calico, docker, etcd, host
from calicolab.diagnose.diagnoses import NODE_UNREACHABLE, Finding
from calicolab.diagnose.engine import Check, ClusterView, failed, guarded, unavailable

CHECKS: tuple[Check, ...] = (
    Check("etcd member", per_node=etcd.check_etcd_member),
    Check("etcd loopback URL", per_node=etcd.check_etcd_loopback),
    Check("etcd v2 API", per_node=etcd.check_etcd_v2),
    Check("etcd cluster", cluster=etcd.check_etcd_cluster),
    Check("docker cluster store", per_node=docker.check_docker_store),
    Check("calico networks shared", cluster=docker.check_networks_shared),
    Check("calico-node", per_node=calico.check_calico_node),
    Check("libnetwork plugin", per_node=calico.check_plugin_sockets),
    Check("felix", per_node=calico.check_felix),
    Check("BIRD", per_node=calico.check_bird),
    Check("BGP mesh", per_node=calico.check_bgp_mesh),
    Check("BGP collision", cluster=calico.check_bgp_collisions),
    Check("BGP port 179", per_node=calico.check_bgp_port),
    Check("BGP address", per_node=calico.check_bgp_address),
    Check("IP forwarding", per_node=host.check_ip_forwarding),
    Check("rp_filter", per_node=host.check_rp_filter),
    Check("MTU", per_node=host.check_mtu),
)
CHECK_NAMES = tuple(c.name for c in CHECKS)
PER_NODE_AT_ONCE = 4  # a node's checks in flight at once (SSH channels of its one connection)


def run(view: ClusterView, only: Iterable[str] | None = None) -> list[Finding]:
    """Run the checks (all, or those named) on every node; a node that cannot be reached
    gives one failing finding instead of stopping the others."""
    wanted = set(only) if only is not None else set(CHECK_NAMES)
    unknown = wanted - set(CHECK_NAMES)
    if unknown:
        raise UserError(f"unknown check(s) {', '.join(sorted(unknown))}: known are {', '.join(CHECK_NAMES)}")
    view._cache.clear()  # answers are per run: the cluster changes between runs

    def unreachable(name: str) -> Finding | None:
        try:
            view.nodes[name].run("true", timeout=30).ran()  # sudo refusing (no NOPASSWD, requiretty) stops every check
        except UserError as err:
            return failed("SSH", name, str(err).split(":")[0], NODE_UNREACHABLE.at(name))
        except CommandUnavailable as err:
            return unavailable("SSH", err)
        return None

    with ThreadPoolExecutor(max_workers=len(view.nodes) or 1) as pool:
        findings = [f for f in pool.map(unreachable, view.nodes) if f is not None]
    reachable = {name: node for name, node in view.nodes.items() if name not in {f.node for f in findings}}
    if not reachable:
        return findings
    sub = ClusterView(view.cfg, reachable, view._cache) if len(reachable) != len(view.nodes) else view
    chosen = [check for check in CHECKS if check.name in wanted]
    mine = [check for check in chosen if check.per_node is not None]
    # A node's checks at once as well: each is a few reads of its own (the answers several of them
    # share are cached per run in the view); the doctor's rounds were the fault pass's largest
    # share of polling. One at a time on emulated VMs, where commands at once starve each other
    # on one vCPU (the snapshot's reads at once did: a read past its limit).
    at_once = PER_NODE_AT_ONCE if deadline_factor() == 1.0 else 1

    def on_node(name: str) -> dict[str, Finding]:
        node = reachable[name]
        with ThreadPoolExecutor(max_workers=min(at_once, len(mine)) or 1) as checks_pool:
            found = checks_pool.map(lambda c: guarded(c.name, name, lambda: c.per_node(sub, node)), mine)
            return dict(zip((c.name for c in mine), found, strict=True))

    with ThreadPoolExecutor(max_workers=len(reachable)) as pool:
        per_node = dict(zip(reachable, pool.map(on_node, reachable), strict=True))
    for check in chosen:
        if check.cluster is not None:
            findings.append(guarded(check.name, "cluster", lambda c=check: c.cluster(sub)))
        if check.per_node is not None:
            findings.extend(per_node[name][check.name] for name in reachable)
    return findings


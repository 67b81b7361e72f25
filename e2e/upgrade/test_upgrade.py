"""Upgrade rehearsals on the running cluster (`invoke e2e --suite upgrade`, run on a cluster
brought up at old versions, e.g. --etcd 3.3.25 --docker 20.10.5).

Each rehearsal keeps workloads running across the upgrade, snapshots /calico and /docker
before and after, and starts new workloads afterwards. They run in this order, one by one;
the read-only checks then run again at the new versions.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from calicolab.core import config, paths, versions
from calicolab.measure import budgets as budget_rules
from calicolab.stack import impairments, workloads
from calicolab.upgrade import drills
from calicolab.upgrade.rehearsal import rehearse
from e2e import expect, guide
from e2e.upgrade.grading import grade, grade_budgets, grade_history

# BIRD 1.6's `start delay time` default (its BGP options: first connect 5 s after start; seen here:
# started 06:34:50.8, connected 06:34:55.9).
BIRD_START_DELAY_S = 5
# A session dropped in graceful-restart recovery costs the start delay plus the next session's
# setup (3 s allowed): 8 s, as budgets.yaml's `... under recovery-session-lost` entries.
RECOVERY_PER_DROP_S = BIRD_START_DELAY_S + 3.0

pytestmark = [pytest.mark.upgrade]


def _current(cluster_json, plants: config.Plants | None = None) -> config.ClusterConfig:
    # Re-read every time: each rehearsal moves the cluster (and its cluster.json) forward. The
    # run's test-only plants are not in cluster.json: a rehearsal gets them from the cluster fixture.
    return config.with_plants(config.from_effective(cluster_json), plants or config.Plants())


def _invoke_upgrade(cluster_json, *args: str) -> subprocess.CompletedProcess:
    """`invoke upgrade ...` on this run's cluster, told its run folder and prefix as flags."""
    run = ["--run-dir", str(cluster_json.parent), "--prefix", _current(cluster_json).prefix]
    return subprocess.run([sys.executable, "-m", "invoke", "upgrade", *args, *run], cwd=paths.ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def fresh_upgrade_report(cluster_json):
    """reports/upgrade.json gathers this pass's rehearsals only."""
    (_current(cluster_json).reports_path / "upgrade.json").unlink(missing_ok=True)


@pytest.fixture
def ordered_nodes(nodes, cluster):
    return [nodes[n.name] for n in cluster.nodes]


# flag, version, the reason the refusal must give ({provider}: see refusal_reason), the hazard line.
REFUSALS = [
    ("--etcd", "3.6.0", "etcd 3.6 removed the v2 API", "[REFUSED] etcd-3.6-no-v2"),
    ("--docker", "24.0.7", "Docker 23 removed cluster-store", "[REFUSED] docker-23-no-cluster-store"),
    ("--calico", "v3.0.1", "Calico 3 dropped the Docker libnetwork driver", "[REFUSED] calico-3-data-migration"),
    ("--etcd", "3.4.99", "is not available for the {provider} provider", ""),
]


def refusal_reason(template: str, run: config.ClusterConfig) -> str:
    """The reason for this run's provider, from the run's own settings (cluster.json): the lab is
    `docker`; a VM provider is named with its box's OS (e.g. `virtualbox:centos7`), because the
    versions it can install depend on both."""
    named = run.provider if run.provider == "docker" else f"{run.provider}:{run.vm_os}"
    return template.format(provider=named)


@pytest.mark.parametrize("flag,version,reason,hazard", REFUSALS)
def test_refused_upgrade_is_refused_with_its_reason_and_changes_nothing(cluster_json, flag, version, reason, hazard):
    before = _current(cluster_json).versions
    reason = refusal_reason(reason, _current(cluster_json))
    res = _invoke_upgrade(cluster_json, flag, version)
    print(f"invoke upgrade {flag} {version}: {res.stderr.strip()}")
    expect.equal(f"exit code of `invoke upgrade {flag} {version}`", res.returncode, 2,
                 "the compatibility rules did not stop the upgrade")
    expect.true("the refusal names its reason", reason in res.stderr, reason, res.stderr.strip(),
                "the refusal rule's reason is missing from the message")
    expect.true("the hazard report names the refused hazard first", hazard in res.stdout, hazard or "(any)",
                res.stdout.strip()[-500:], "the hazard report was not printed before the refusal")
    expect.equal("versions after a refused upgrade", _current(cluster_json).versions, before,
                 "a refused upgrade touched the cluster")


def _rehearse(cluster_json, nodes, cluster, component: str):
    cfg = _current(cluster_json, cluster.plants)
    running = getattr(cfg.versions, component)
    target = versions.newest(component, cfg.install_target)
    if running == target:
        pytest.skip(f"{component} already runs {target}: bring the cluster up at an older version "
                    f"(e.g. invoke e2e --suite upgrade --etcd 3.3.25 --docker 20.10.5)")
    result, after = rehearse(cfg, nodes, component, target, say=print)
    print(result.summary())
    expect.equal(f"{component} after the rehearsal", getattr(after.versions, component), target,
                 "the rolling upgrade stopped early")
    grade(result, cluster)
    grade_history(result)
    grade_budgets(result, budget_rules.load(cfg.budgets_path))
    return result, running, target


def test_etcd_rolling_upgrade_keeps_keys_and_traffic(cluster_json, ordered_nodes, cluster):
    result, before, target = _rehearse(cluster_json, ordered_nodes, cluster, "etcd")
    # The hazards the path crosses, from the versions (etcd's upgrade guides: 3.4 turned v2 off
    # by default; 3.5 changed auth's WAL entries and removed `etcdctl migrate`).
    crossing = {"etcd-3.4-v2-off": (3, 4), "etcd-3.5-auth-wal": (3, 5), "etcd-3.5-no-migrate": (3, 5)}
    want_hazards = {h for h, at in crossing.items()
                    if versions.parse(before)[:2] < at <= versions.parse(target)[:2]}
    expect.equal("hazards named for the path", {h["id"] for h in result.hazards}, want_hazards,
                 "the hazard table or its crossing rule is wrong")
    expect.equal("hazard checks that failed", {h["id"]: h["result"] for h in result.hazards if h["result"]}, {},
                 "a known hazard bit this cluster")
    # One minor version at a time, every member at each: from first principles, not the upgrader.
    want = [(n.name, m) for m in guide.minors_between(before, target) for n in ordered_nodes]
    seen = [(h.node, guide.minor(h.after)) for h in result.hops]
    expect.equal("etcd hops (member, minor version), in order", seen, want, "a minor version was skipped")
    expect.equal("etcd's last hop", result.hops[-1].after, target, "the upgrade stopped below the target")
    chain = [h.before for h in result.hops[len(ordered_nodes):]]
    expect.equal("each minor starts where the last one ended", chain,
                 [h.after for h in result.hops[:-len(ordered_nodes)]], "a hop started from another version")
    sent, got = result.during
    expect.true("background ping while etcd was upgraded", sent > 0 and got == sent,
                "every reply (etcd is not on the data path)", f"{got}/{sent}",
                "routes were withdrawn: calico-node lost etcd and restarted?")


def test_etcd_downgrade_after_the_cluster_version_moved_is_refused(cluster_json):
    # etcd's rule: once every member ran the newer minor the cluster version moved, and a member
    # below it refuses to start; the suite says so before touching anything.
    cfg = _current(cluster_json)
    running = cfg.versions.etcd
    column = versions.family(cfg.install_target)
    older = [v for v, where in versions.catalogue()["etcd"].items()
             if column in where and guide.minor(v) < guide.minor(running)]
    if not older:
        pytest.skip(f"no etcd minor below {running} on this provider to try a downgrade to")
    target = max(older, key=versions.parse)
    res = _invoke_upgrade(cluster_json, "--etcd", target)
    print(f"invoke upgrade --etcd {target}: {res.stderr.strip()}")
    expect.equal(f"exit code of `invoke upgrade --etcd {target}` on etcd {running}", res.returncode, 2,
                 "the suite let a downgrade past the cluster version start")
    expect.true("the refusal gives etcd's reason", "cluster cannot be downgraded" in res.stderr,
                "etcd's 'cluster cannot be downgraded'", res.stderr.strip(), "the downgrade rule's reason is missing")
    expect.equal("versions after the refused downgrade", _current(cluster_json).versions, cfg.versions,
                 "a refused downgrade touched the cluster")


def test_docker_rolling_upgrade_keeps_containers_and_network(cluster_json, ordered_nodes, cluster):
    result, _, _ = _rehearse(cluster_json, ordered_nodes, cluster, "docker")
    # A busybox workload and a disruption probe per node: Docker's upgrade restarts them all.
    expect.equal("workloads Docker restarted", sorted(ep.workload for ep in result.restarted),
                 sorted(f"upg-{kind}{n.name}" for n in ordered_nodes for kind in ("", "probe-")),
                 "the rehearsal did not watch one workload and one probe per node")


def _rolling_restart(cluster_json, ordered_nodes, cluster, impair: impairments.Impairment | None):
    cfg = _current(cluster_json, cluster.plants)
    result, _ = rehearse(cfg, ordered_nodes, "calico", cfg.versions.calico, say=print, impair=impair)
    print(result.summary())
    grade(result, cluster)
    grade_history(result)
    grade_budgets(result, budget_rules.load(cfg.budgets_path))
    expect.equal("calico-node restarts, one per node, in order", [h.node for h in result.hops],
                 [n.name for n in ordered_nodes], "the rolling restart skipped a node")
    return result


def test_calico_node_rolling_restart_keeps_every_packet(cluster_json, ordered_nodes, cluster):
    result = _rolling_restart(cluster_json, ordered_nodes, cluster, None)
    sent, got = result.during
    expect.true("background ping during the rolling restart", sent > 0, "pings sent", sent,
                "the workload's ping did not run")
    # `docker stop` of calico/node SIGKILLs BIRD (runsvdir -P): no Cease, so the peer keeps the
    # routes by graceful restart and the restarted node's kernel keeps its own (persist, -R);
    # the workloads' data path never stops: budgets.yaml's calico-node-restart (icmp_lost 0,
    # lost_packets 0), graded above. Only a session the nodes' BIRD logs show dropped as it came
    # up moves the grading to the entry under recovery-session-lost.
    print(f"graded against {result.budget_entry!r}; BGP sessions dropped as they came up: "
          f"{result.sessions_dropped or 'none'}")


def test_calico_node_rolling_restart_under_bgp_loss_reestablishes_sessions(cluster_json, ordered_nodes, cluster):
    # Under 20 % random loss on BGP's TCP 179 between the nodes: sessions must still come back
    # within their budget (TCP retransmits what is lost); what the data path may lose is the
    # budgets file's `calico-node-restart under loss:179` entry, with its reason.
    result = _rolling_restart(cluster_json, ordered_nodes, cluster, impairments.Impairment("loss", 179, percent=20))
    expect.true("the 20 % loss on TCP 179 was on BGP's path", bool(result.impairments) and
                result.impairments[0]["seen"] > 0, "BGP packets reached the loss rules", result.impairments,
                "the impairment matched nothing: wrong addresses or port")
    expect.equal("the budgets entry the restart under loss was held to", result.budget_entry,
                 "calico-node-restart under loss:179", "budgets.yaml lost the entry for BGP loss")


def test_restore_from_backups_after_the_cluster_broke(cluster_json, ordered_nodes, cluster):
    """Last: the disaster drill on the upgraded cluster (etcd 3.4+ takes a v3 snapshot too)."""
    cfg = _current(cluster_json)
    result = drills.restore(cfg, ordered_nodes, say=print)
    drills.append_report(cfg, result)
    print(result.summary())
    expect.true("keyspace snapshots", bool(result.before), "the /calico and /docker keys", len(result.before),
                "etcd's v2 keyspace could not be read")
    expect.equal("keys lost or changed by the break and restore",
                 sorted(k for k in result.before if result.after.get(k) != result.before[k]), [],
                 "the backup or the restore dropped or rewrote data Calico or Docker wrote")
    empty = [c for c in result.checks if c.what.startswith("v2 keys in the rebuilt cluster")]
    expect.equal("v2 keys in the cluster rebuilt from the v3 snapshot, before they were written back",
                 [c.seen for c in empty], ["0"], "the data was not removed, or a v3 snapshot carried v2 keys")
    expect.equal("etcd members after the restore", result.versions, {n.name: cfg.versions.etcd for n in ordered_nodes},
                 "a member did not come back")
    sent, got = result.during or (0, 0)
    # calico-node is stopped on every node for the whole restore (25 s here) and started on all
    # of them at once. While it is down the routes stay (no Cease, kernel `persist`), and with
    # graceful restart on both ends the new sessions take them over: nothing lost but a reply in
    # flight per node. When a session is dropped as it came up (the BIRD logs say, e.g. CI of
    # 2026-12-03: node1's at 08:01:00.8, node2's next at 08:01:05.7, 55 of 161 replies lost), BIRD
    # ends the restart and prunes the peer's route until the next session: one start delay plus a
    # session's setup per drop, as budgets.yaml's recovery-session-lost entries. A data path that
    # depended on etcd or calico-node would lose the whole stop instead.
    per_drop = round(RECOVERY_PER_DROP_S / workloads.BACKGROUND_INTERVAL)
    slack = len(ordered_nodes) + per_drop * len(result.sessions_dropped)
    print(f"sessions dropped as they came up: {result.sessions_dropped or 'none'}; replies allowed lost: {slack}")
    expect.true("background ping across the break and restore", sent > 0 and sent - got <= slack,
                f"every reply but at most {slack}", f"{got}/{sent}",
                "the data path depended on etcd: routes withdrawn while it was down?")
    expect.equal("reply TTLs after the restore (old and new workloads)", sorted(set(result.pings.values()), key=str),
                 [guide.TTL], "Calico or Docker did not work again after the restore")
    addresses = next(c for c in result.checks if c.what.startswith("every workload's address"))
    expect.equal("distinct workload addresses after the restore", addresses.seen, addresses.expected,
                 "IPAM handed out an address twice: the restored blocks lost their allocations")


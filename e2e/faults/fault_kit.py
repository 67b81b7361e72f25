"""What the fault modules share: the deadlines, waiting for health, naming the fault by its
diagnosis, the traffic pair, calico-node's processes, the budget judgement and the /calico keys.

The fixtures that hold state across the pass (the cluster view, the traffic pair, the
disruption probes, the fault plant) are in conftest.py; test modules import these helpers from
here, never from conftest.py (pytest loads conftest files itself, so they are not a library).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from calicolab.core.polling import Timeout, wait_for
from calicolab.core.remote import Node
from calicolab.diagnose import calico as diag_calico
from calicolab.diagnose import checks, engine
from calicolab.diagnose.diagnoses import PASS, Finding
from calicolab.diagnose.engine import ClusterView
from calicolab.measure import budgets as budget_rules
from calicolab.measure.fault_window import Measured
from calicolab.stack import keyspace, probes, workloads
from calicolab.stack.workloads import Workload
from e2e import expect

BASELINE_DEADLINE = 90  # the previous test's recovery may still be settling
DETECT_DEADLINE = 60
ETCD_DEADLINE = 90
# BIRD's default timers (calico/node's templates set none): a refused connection is retried
# after 5 s, a SYN that gets no answer (DROP) only after the 120 s connect-retry time.
BGP_DEADLINE = 150
RULE_TAG = "calicolab-fault"  # every iptables rule and backup file a fault leaves carries it
BGP_CHECKS = ("calico-node", "BIRD", "BGP mesh")


# -- health and diagnosis ------------------------------------------------------------------------
def show(title: str, findings: Iterable[Finding]) -> None:
    print(f"--- {title}")
    for finding in findings:
        print(f"  {finding.line()}")


def healthy(view: ClusterView, names: tuple[str, ...], what: str, deadline: float) -> list[Finding]:
    """Wait until every named check passes (a warning is fine: it is not a failure)."""
    try:
        found = wait_for(lambda: checks.run(view, names), lambda fs: all(f.ok for f in fs), what,
                         timeout=deadline, interval=0.25)
    except Timeout as err:
        last = err.last if isinstance(err.last, list) else []
        first = next((f for f in last if not f.ok), None)
        expect.fail(f"{what} (waited {deadline:.0f} s)", f"these checks pass: {', '.join(names)}",
                    engine.explain(last) if last else err.last,
                    first.diagnosis.text() if first and first.diagnosis else "")
    show(what, found)
    return found


def detect(view: ClusterView, names: tuple[str, ...], wanted: set[str], where: Iterable[str],
           deadline: float = DETECT_DEADLINE, before: Iterable[Finding] = ()) -> Finding:
    """Poll the named checks until one of them blames a wanted diagnosis on one of `where`
    (node names or IPs, as they appear in the diagnosis) that was not already among the
    findings `before` the fault (a warning left by an earlier test is not this fault's)."""
    places = tuple(where)

    def blame(f: Finding) -> tuple[str, str, str, str] | None:
        return (f.check, f.node, f.diagnosis.name, f.diagnosis.where) if f.diagnosis else None

    old = {blame(f) for f in before} - {None}

    def hit(found: list[Finding]) -> Finding | None:
        return next((f for f in found if f.result != PASS and f.diagnosis and f.diagnosis.name in wanted
                     and any(p in f.diagnosis.where for p in places) and blame(f) not in old), None)

    try:
        found = wait_for(lambda: checks.run(view, names), lambda fs: hit(fs) is not None,
                         f"a diagnosis among {sorted(wanted)}", timeout=deadline, interval=0.2)
    except Timeout as err:
        expect.fail(f"detection by {', '.join(names)} (waited {deadline:.0f} s)",
                    f"{' or '.join(sorted(wanted))} at {' or '.join(places)}",
                    engine.explain(err.last) if isinstance(err.last, list) else err.last,
                    "the checks do not recognise this fault")
    show("detected", found)
    finding = hit(found)
    assert finding is not None
    print(f"DIAGNOSIS: {finding.check} on {finding.node}: {finding.diagnosis.name}: {finding.diagnosis.text()}")
    return finding


# -- etcd data -----------------------------------------------------------------------------------
CALICO_TREE = ("/calico",)


def calico_keys(node: Node) -> dict[str, str]:
    """Every key under /calico with its value, read through `node`'s own member (to prove
    nothing was lost). A missing or empty tree fails: there would be nothing to prove."""
    what = f"{node.name}: GET /v2/keys/calico?recursive=true"
    try:
        keys = keyspace.snapshot(node, node.ip, CALICO_TREE)
    except RuntimeError as err:
        expect.fail(what, "etcd's /calico tree", str(err), "etcd's v2 keyspace is not readable")
    expect.true(what, bool(keys), "the keys Calico wrote", "no key under /calico",
                "etcd's v2 keyspace has no /calico tree (calico-node never wrote it, or it was wiped)")
    return keys


def same_keys(before: dict[str, str], after: dict[str, str]) -> None:
    """No key lost, none changed (keys added meanwhile are fine: Calico keeps writing)."""
    found = keyspace.diff(before, after)
    expect.true("etcd /calico keys after the fault", found.clean, f"all {len(before)} keys, unchanged",
                found.summary(), "the fault or its repair dropped etcd data (a member's data dir wiped?)")
    print(f"data: all {len(before)} /calico keys still there, unchanged")


# -- workloads carrying traffic ------------------------------------------------------------------
@dataclass(frozen=True)
class Traffic:
    network: str
    a: Workload
    b: Workload

    def ping(self, deadline: float = BGP_DEADLINE) -> None:
        """Both directions answer (routes between the nodes' blocks are back)."""
        for src, dst in ((self.a, self.b), (self.b, self.a)):
            try:
                reply = workloads.ping_until(src, dst, deadline, interval=0.25)
            except Timeout as err:
                expect.fail(f"{src.name} ({src.node.name}) pings {dst.name} {dst.ip} (waited {deadline:.0f} s)",
                            "a reply", str(getattr(err.last, "output", err.last))[-200:],
                            "no route between the blocks: BGP not Established")
            print(f"traffic: {src.name} -> {dst.name} answers, ttl {list(reply.ttls)}")


# -- calico-node's processes ---------------------------------------------------------------------
def processes(node: Node, name: str) -> list[probes.Process]:
    """The processes called `name` inside calico-node on `node`."""
    return [p for p in probes.container_processes(node, "calico-node") or [] if p.command == name]


def birds(node: Node) -> list[probes.Process]:
    return processes(node, "bird")


def settled_long_enough(node: Node) -> None:
    """Wait until calico-node on `node` has run longer than BIRD_START_SLACK: the BIRD and felix
    checks tell a process restarted inside calico-node from one started with it by that margin,
    so a kill in calico-node's first seconds (the first test after provisioning) cannot be named
    as a restart by anyone, the doctor included."""
    need = diag_calico.BIRD_START_SLACK + 2

    def oldest() -> int:
        return max((p.age for p in probes.container_processes(node, "calico-node") or []), default=0)

    wait_for(oldest, lambda age: age > need, f"{node.name}: calico-node up over {need} s",
             timeout=need + BASELINE_DEADLINE)


def bgp_drop_rules(peer_ip: str) -> list[str]:
    """iptables rules (without -I/-D) dropping TCP 179 from the peer: both directions of the BGP
    session, whichever side opens it."""
    return [f"INPUT -s {peer_ip} -p tcp --{side} 179 -m comment --comment {RULE_TAG} -j DROP"
            for side in ("dport", "sport")]


# -- budgets -------------------------------------------------------------------------------------
def judged(m: Measured) -> None:
    """The fault's probe figures against the budgets file (the run's `budgets` setting),
    by the entry the window chose from the BGP drops it saw: measured vs budget for any over it,
    and every dropped session with its shape and BIRD's lines."""
    print(m.table)
    for line in m.lines:
        print(line)
    expect.true(f"{m.step.step if m.step else 'fault'}: budgets apply", bool(m.verdicts), "budgets for the fault",
                "none", "the budgets file has no entry for this fault")
    if m.over:
        causes = sorted({budget_rules.MEASURES[v.measure].cause for v in m.over})
        seen = [d.describe() for d in m.drops] or ["no BGP session dropped in the window (BIRD logs at debug)"]
        expect.fail(f"{m.step.step if m.step else 'fault'}: disruption budgets ({m.entry!r})",
                    "every figure within its budget", "; ".join(v.line() for v in m.over),
                    "; ".join([*causes, *([m.why] if m.why else []), *seen]))

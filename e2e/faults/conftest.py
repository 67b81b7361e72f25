"""Fault injection: each test_<fault>.py here breaks one thing on the running cluster, checks
that the named diagnosis (calicolab/diagnose/, what `invoke doctor` prints) names the cause,
puts it right, and checks that the cluster heals within a deadline without losing data.

Every test restores what it broke in `finally`, because the next test uses the same cluster;
`invoke verify` runs this folder one test at a time (marker `disruptive`) after the read-only
checks. Each test prints what the checks saw, so the diagnosis is in the output and JUnit.

Adding a fault is one file, plus a budgets entry and a diagnosis where it needs them:
- e2e/faults/test_<fault>.py with `pytestmark = [pytest.mark.disruptive]` and one test taking
  the fixtures below (`view`, `traffic`, `disruption_probes`) and the helpers in fault_kit.py
  (`healthy` before and after, `detect` for the diagnosis, `judged` for the budgets). It runs
  after the modules in RUN_ORDER, alphabetically among any others.
- If it measures the disruption (`disruption_probes.window(kind, ...)`), an entry named `kind`
  in budgets.yaml: the entry declares the kind (nothing else lists it), a window whose entry is
  missing is refused before the fault is made, and tests/unit/test_budget_kinds.py checks both
  ways (every entry used, every kind used has an entry).
- If no check names it yet, a Diagnosis in calicolab/diagnose/diagnoses.py and the check that
  returns it (calicolab/diagnose/{etcd,docker,calico,host}.py, listed in checks.py).
For example test_kill_felix.py: `kill -9` of felix inside calico-node, measured in the window
"felix-kill" (budgets.yaml `felix-kill:` allows no lost packet), named by the check "felix" as
"felix down" or "felix restarted" (diagnoses.py FELIX_DOWN, FELIX_RESTARTED).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from calicolab.core import polling
from calicolab.diagnose.engine import ClusterView
from calicolab.measure import fault_time
from calicolab.measure.fault_window import FaultProbes
from calicolab.stack import workloads
from calicolab.stack.workloads import WorkloadFailed
from e2e import expect
from e2e.faults.fault_kit import Traffic

HERE = Path(__file__).resolve().parent
# The faults in the order they ran as one module (test_faults.py), the order the budgets' lab
# figures were measured in: the etcd member first, before the traffic pair exists; the killed
# BIRD and felix before any test restarts calico-node; the v2 API, which restarts every etcd
# member at once, last. A module not listed runs after these, alphabetically.
RUN_ORDER = ("test_etcd_member_down", "test_kill_bird", "test_kill_felix", "test_calico_node_before_etcd",
             "test_restart_calico_node", "test_drop_bgp_port", "test_etcd_v2_off")


def pytest_collection_modifyitems(config, items):  # noqa: ARG001 - pytest hook signature
    """Put this folder's tests in RUN_ORDER, in the places they were collected in (the other
    folders' tests, when collected together, keep theirs); tests within a module keep their order."""
    missing = [name for name in RUN_ORDER if not (HERE / f"{name}.py").is_file()]
    if missing:
        raise pytest.UsageError(f"e2e/faults/conftest.py RUN_ORDER names modules that do not exist: "
                                f"{', '.join(missing)} (renamed? update RUN_ORDER)")
    slots = [i for i, item in enumerate(items) if item.path.parent == HERE]

    def rank(index: int) -> int:
        stem = items[index].path.stem
        return RUN_ORDER.index(stem) if stem in RUN_ORDER else len(RUN_ORDER)

    ordered = [items[i] for i in sorted(slots, key=rank)]  # stable: collection order within a rank
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


# -- where each fault test's time went (calicolab/measure/fault_time.py) -------------------------
@pytest.fixture(scope="package", autouse=True)
def time_folder(cluster) -> Path:
    """This pass's lines only: an earlier pass's are dropped when the folder starts."""
    fault_time.clear(cluster.reports_path)
    return cluster.reports_path


@pytest.fixture(autouse=True)
def time_accounts(request, time_folder):
    """Each test's time, split into its waits and the rest: printed with the test's output
    (JUnit's system-out) and one JSON line in the reports folder, for `invoke bench`."""
    mark, start = len(polling.WAITS), time.monotonic()
    yield
    row = fault_time.row(request.node.nodeid, time.monotonic() - start, polling.WAITS[mark:])
    print(fault_time.line(row))
    fault_time.append(time_folder, row)


# -- the fault plant -----------------------------------------------------------------------------
@pytest.fixture
def fault_plant(cluster) -> tuple[str, float]:
    """`--plant fault=...` (test only; validated by config.parse_plants), for the killed-BIRD test:
    `bgp-drop:SECONDS` drops TCP 179 between the nodes for that long from the kill on; `bgp-cease`
    restarts the peer's protocol for the victim once BGP is back (BIRD sends Cease 6.4,
    "Administrative reset": a drop that is no collision, which the test must fail on, naming it).
    ("", 0.0) when none is planted."""
    plant = cluster.plants
    return plant.fault.partition(":")[0], plant.fault_seconds


# -- state shared by the faults (package scope: one of each for the whole folder) ----------------
@pytest.fixture(scope="package")
def view(cluster, nodes) -> ClusterView:
    return ClusterView(cluster, dict(nodes))


@pytest.fixture(scope="package")
def traffic(nodes, cluster):
    """Two workloads on the first two nodes' blocks, pinging each other after every fault."""
    tag = uuid.uuid4().hex[:6]
    network, names = f"fault-net-{tag}", (f"fault-a-{tag}", f"fault-b-{tag}")
    first, second = nodes[cluster.nodes[0].name], nodes[cluster.nodes[1].name]
    try:
        try:
            workloads.create_network(first, network)
            pair = Traffic(network, *workloads.start_each([first, second], names, network))
        except WorkloadFailed as err:
            expect.fail(err.what, "created", err.result.describe(),
                        "Docker cannot reach the calico plugins or its cluster store")
        pair.ping(deadline=60)
        yield pair
    finally:
        workloads.remove([second, first], names, network)


@pytest.fixture(scope="package")
def disruption_probes(cluster, nodes, traffic):
    """UDP/TCP disruption probes between the traffic pair's blocks, from the first fault that
    measures its window to the end of the folder."""
    ordered = [nodes[n.name] for n in cluster.nodes[:2]]
    measured = FaultProbes(cluster, ordered, [traffic.a.block, traffic.b.block])
    try:
        yield measured
    finally:
        measured.close()

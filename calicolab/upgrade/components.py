"""The upgradable components, one entry each: what the upgrader, the rehearsal, the step
figures and the e2e grading need to know about a component, in one place.

Adding a component is one entry here, the Upgrader method it names (with the provisioning that
installs it) and its budgets.yaml entry; tests/unit/test_components.py fails until every
component of versions.yaml has an entry (or a reason in NOT_UPGRADED), every entry's method
exists and every step kind has its budgets.
"""

from __future__ import annotations

from dataclasses import dataclass

from calicolab.core.errors import UserError
from calicolab.upgrade import hazards as known_hazards


@dataclass(frozen=True)
class Component:
    name: str  # the versions key: cluster.yaml versions.<name>, versions.yaml, `invoke upgrade --<name>`
    hop: str  # what each hop moves, as the hop table and the step figures name it
    upgrade: str  # the Upgrader method that rolls it out: Upgrader.<upgrade>(target)
    step_kind: str  # the kind of each of its hops: the budgets.yaml entry they are judged by
    restarts_workloads: bool  # its upgrade stops and starts each node's workloads
    watches_bgp: bool  # the window logs BIRD at debug and classifies every dropped BGP session

    @property
    def workloads_keep_running(self) -> bool:
        """The rehearsal's background ping runs across the upgrade, and no endpoint may change."""
        return not self.restarts_workloads

    @property
    def hazards(self) -> tuple[known_hazards.Hazard, ...]:
        return tuple(h for h in known_hazards.HAZARDS if h.component == self.name)


ETCD = Component("etcd", "etcd", "etcd", "etcd-member-upgrade", restarts_workloads=False, watches_bgp=False)
# dockerd's stop takes the node's containers with it; calico-node is stopped and started too,
# but its BGP drops are judged on calico-node's own restarts (no BGP figures in docker-upgrade).
DOCKER = Component("docker", "docker", "docker", "docker-upgrade", restarts_workloads=True, watches_bgp=False)
# A rolling restart onto the target image: BIRD restarts, and that is what drops sessions.
CALICO = Component("calico", "calico-node", "calico", "calico-node-restart", restarts_workloads=False,
                   watches_bgp=True)

# In the order `invoke upgrade` rolls them: the store first, then its clients.
COMPONENTS: tuple[Component, ...] = (ETCD, DOCKER, CALICO)
NAMES = tuple(c.name for c in COMPONENTS)
# versions.yaml components that are never rolled, and why.
NOT_UPGRADED = {
    "calicoctl": "a command-line client run per command (v1.6.1, the one for Calico 2.6): nothing of it "
                 "keeps running to roll; provisioning installs the version asked",
}


def get(name: str) -> Component:
    for component in COMPONENTS:
        if component.name == name:
            return component
    raise UserError(f"{name!r} is not an upgradable component: use one of {', '.join(NAMES)}")

"""The component registry is complete: every component versions.yaml and the configuration
know has an entry (or a reason not to be rolled), each entry's upgrade method exists on the
upgrader and takes a target, each step kind has budgets, and each hazard belongs to an entry.
The facts are read from versions.yaml, budgets.yaml and the Upgrader class themselves."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence

import pytest
import yaml

from calicolab.core import config
from calicolab.core.paths import ROOT
from calicolab.measure import budgets
from calicolab.upgrade import components, hazards
from calicolab.upgrade.components import Component
from calicolab.upgrade.upgrader import Upgrader


def gaps(registry: Sequence[Component], not_upgraded: Mapping[str, str]) -> list[str]:
    """What is missing or wrong in a registry, one line each."""
    catalogue = yaml.safe_load((ROOT / "versions.yaml").read_text())
    budget_file = yaml.safe_load((ROOT / "budgets.yaml").read_text())
    named = {c.name for c in registry}
    found = [f"{name}: in versions.yaml, but neither an entry nor in NOT_UPGRADED"
             for name in catalogue if name not in named and name not in not_upgraded]
    found += [f"{f.name}: a version in the configuration (config.Versions), but neither an entry nor in "
              "NOT_UPGRADED" for f in dataclasses.fields(config.Versions)
              if f.name not in named and f.name not in not_upgraded]
    found += [f"{name}: in both the registry and NOT_UPGRADED" for name in named & set(not_upgraded)]
    if len(named) != len(registry) or len({c.hop for c in registry}) != len(registry):
        found.append("two entries share a name or a hop label")
    for c in registry:
        method = getattr(Upgrader, c.upgrade, None)
        if not callable(method):
            found.append(f"{c.name}: Upgrader has no method {c.upgrade!r}")
        elif list(inspect.signature(method).parameters) != ["self", "target"]:
            found.append(f"{c.name}: Upgrader.{c.upgrade} does not take (target)")
        if c.name not in catalogue:
            found.append(f"{c.name}: no versions in versions.yaml")
        if c.step_kind not in budget_file:
            found.append(f"{c.name}: no {c.step_kind!r} entry in budgets.yaml")
        if c.step_kind not in budgets.kinds():
            found.append(f"{c.name}: {c.step_kind!r} is not a step kind budgets.py knows")
    covered = {h.id for c in registry for h in c.hazards}
    found += [f"hazard {h.id}: its component {h.component!r} has no entry"
              for h in hazards.HAZARDS if h.id not in covered]
    return found


def test_the_registry_is_complete():
    assert gaps(components.COMPONENTS, components.NOT_UPGRADED) == []


@pytest.mark.parametrize("gone", [c.name for c in components.COMPONENTS])
def test_a_removed_entry_is_named(gone):
    rest = [c for c in components.COMPONENTS if c.name != gone]
    found = gaps(rest, components.NOT_UPGRADED)
    assert f"{gone}: in versions.yaml, but neither an entry nor in NOT_UPGRADED" in found, found


def test_a_wrong_method_or_step_kind_is_named():
    broken = [dataclasses.replace(components.ETCD, upgrade="etcd_all"),
              dataclasses.replace(components.DOCKER, step_kind="docker-restart"),
              dataclasses.replace(components.CALICO, upgrade="_calico_node")]  # takes (node, target)
    found = gaps(broken, components.NOT_UPGRADED)
    assert "etcd: Upgrader has no method 'etcd_all'" in found, found
    assert "docker: no 'docker-restart' entry in budgets.yaml" in found, found
    assert "calico: Upgrader._calico_node does not take (target)" in found, found


def test_a_component_without_a_reason_not_to_be_rolled_is_named():
    found = gaps(components.COMPONENTS, {})
    assert found == ["calicoctl: in versions.yaml, but neither an entry nor in NOT_UPGRADED",
                     "calicoctl: a version in the configuration (config.Versions), but neither an entry nor in "
                     "NOT_UPGRADED"], found


def test_only_dockers_upgrade_restarts_workloads():
    # dockerd's stop stops its containers (the guide's daemon runs without live-restore); an etcd
    # member or calico-node restart leaves the workloads' containers alone.
    assert [c.name for c in components.COMPONENTS if c.restarts_workloads] == ["docker"]
    assert components.get("calico").hop == "calico-node"  # the hop table's and step names' word


def test_the_store_is_upgraded_before_its_clients():
    assert components.NAMES[0] == "etcd"

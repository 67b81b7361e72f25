"""A step kind is declared once, by its budgets.yaml entry, and used by an upgradable component
(calicolab/upgrade/components.py) or a fault's window (e2e/faults/): adding a fault is its file
and its entry. Here: every kind of the project's file is used, every kind used has an entry,
a user's file is held to the project's kinds, and a fault naming a kind without an entry is
refused before it breaks anything."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import yaml

from calicolab.core.errors import UserError
from calicolab.core.paths import ROOT
from calicolab.measure import budgets, fault_window
from calicolab.upgrade import components

WINDOW = re.compile(r"""\.window\(\s*["']([a-z0-9-]+)["']""")


def fault_kinds() -> dict[str, str]:
    """kind -> the fault module whose window names it."""
    found = {}
    for path in sorted((ROOT / "e2e" / "faults").glob("test_*.py")):
        for kind in WINDOW.findall(path.read_text()):
            found[kind] = path.name
    return found


def test_every_kind_of_budgets_yaml_is_used_and_every_used_kind_has_an_entry():
    declared = set(budgets.kinds())
    used = {c.step_kind for c in components.COMPONENTS} | set(fault_kinds())
    assert fault_kinds(), "no fault window found: the pattern no longer matches e2e/faults/"
    assert declared - used == set(), "budgets.yaml entries no component or fault uses (misspelt?)"
    assert used - declared == set(), "kinds used without a budgets.yaml entry"


def test_the_kinds_are_read_off_the_project_file():
    data = yaml.safe_load((ROOT / "budgets.yaml").read_text())
    assert set(budgets.kinds()) == {str(k).split(" under ")[0] for k in data}
    assert {"felix-kill", "bird-kill", "calico-node-restart"} <= set(budgets.kinds())


def test_a_users_file_with_a_kind_the_project_does_not_know_is_refused():
    with pytest.raises(UserError, match="unknown step 'felix-kil'"):
        budgets.parse({"felix-kil": {"lost_packets": 0}}, "mine.yaml")


def test_a_fault_window_without_its_entry_is_refused_before_the_fault(tmp_path):
    probe = SimpleNamespace(budgets=({"felix-kill": {"lost_packets": 0}}, "budgets.yaml"))
    with (pytest.raises(UserError, match="budgets.yaml has no entry 'new-fault'"),
          fault_window.FaultProbes.window(probe, "new-fault", "node2", "a new fault")):
        pytest.fail("the block ran: the fault would have been made")

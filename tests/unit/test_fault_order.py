"""The fault modules run in the order they ran as one module (e2e/faults/test_faults.py until
the split), whatever their file names sort to; a new module runs after them."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e.faults import conftest as faults

REPO = Path(__file__).resolve().parents[2]
# The order of test_faults.py, the one module before the split (git show 5d70feb:e2e/faults/test_faults.py).
ORIGINAL = ["test_stopped_etcd_member_is_named_and_the_cluster_heals",
            "test_killed_bird_is_named_and_graceful_restart_keeps_traffic",
            "test_killed_felix_restarts_alone_and_bgp_stays_up",
            "test_calico_node_started_before_etcd_fails_its_unit_until_restarted",
            "test_restarted_calico_node_is_named_and_bgp_and_workloads_recover",
            "test_dropped_bgp_port_is_named_and_bgp_comes_back",
            "test_disabled_v2_api_is_named_and_calico_and_docker_recover"]


def test_the_fault_folder_collects_in_the_original_order():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "e2e/faults"], cwd=REPO, capture_output=True, text=True, timeout=120)
    ids = [line for line in out.stdout.splitlines() if "::" in line]
    assert [i.split("::")[1] for i in ids][:len(ORIGINAL)] == ORIGINAL, out.stdout + out.stderr


@dataclass
class Item:
    path: Path


def test_only_the_fault_tests_move_and_an_unlisted_module_comes_last():
    other = Item(REPO / "e2e" / "etcd" / "test_etcd.py")
    new = Item(faults.HERE / "test_aaa_new_fault.py")  # sorts first by name, runs last
    listed = [Item(faults.HERE / f"{name}.py") for name in faults.RUN_ORDER]
    items = [other, new, *reversed(listed), other]
    faults.pytest_collection_modifyitems(None, items)
    assert items == [other, *listed, new, other]


def test_a_listed_module_that_is_gone_stops_collection(monkeypatch, tmp_path):
    monkeypatch.setattr(faults, "HERE", tmp_path)
    with pytest.raises(pytest.UsageError, match="test_etcd_member_down"):
        faults.pytest_collection_modifyitems(None, [])

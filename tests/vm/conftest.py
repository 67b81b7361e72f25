"""Shared helpers for the VM-path tests: the repository on sys.path and a recording node."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from fakes import FakeNode  # noqa: E402  (tests/conftest.py puts tests/ on sys.path)


@pytest.fixture
def fake_node() -> FakeNode:
    """node1 with no rules: each test names the commands its step must run (tests/fakes.py)."""
    return FakeNode()

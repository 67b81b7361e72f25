"""Fixtures for the Calico double's unit tests; what they are made of lives in double_kit.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from double_kit import FakeEtcd, RecordingNetDev, load_oracle


@pytest.fixture
def oracle() -> Callable[[str], dict[str, Any]]:
    """oracle("calicoctl-get.json") -> the file's document, or the test fails naming what is missing."""
    return load_oracle


@pytest.fixture
def etcd() -> FakeEtcd:
    return FakeEtcd()


@pytest.fixture
def netdev() -> RecordingNetDev:
    return RecordingNetDev()

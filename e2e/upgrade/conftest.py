"""The upgrade pass's own reports start empty: probes.json gathers this pass's probe gaps only."""

from __future__ import annotations

import pytest

from calicolab.core import config


@pytest.fixture(scope="session", autouse=True)
def fresh_probe_gaps(cluster_json):
    config.from_effective(cluster_json).reports_path.joinpath("probes.json").unlink(missing_ok=True)

"""Tests against the real lab (node containers through Vagrant's docker provider).

They need the Docker engine and a lane of their own: a prefix and a free /24 that no other
cluster on the machine uses, given as CALICOLAB_LAB_PREFIX and CALICOLAB_LAB_SUBNET (`invoke
test` sets them). Without either the tests skip and say which is missing. Tests sharing a lane
take turns (a file lock), and every test ends with `invoke destroy` on its lane, so a failing
test leaves nothing behind either.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit import LANE_VARS, Lane

from calicolab.core import shell


def _docker_problem() -> str | None:
    if not shell.which_or_none("docker"):
        return "the docker CLI is not installed (run `invoke setup`)"
    out = shell.run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False, timeout=30)
    if not out.ok or not out.stdout.strip():
        last = (out.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"the Docker engine is not reachable ({last}; run `invoke setup`)"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    problem = _docker_problem()
    if problem:
        pytest.skip(f"lab tests need the Docker engine: {problem}")


@pytest.fixture(scope="session")
def lane_settings(docker_engine) -> tuple[str, str]:
    missing = [v for v in LANE_VARS if not os.environ.get(v)]
    if missing:
        pytest.skip(f"lab tests need a lane of their own: set {' and '.join(missing)} (a prefix and a free "
                    "/24 no other cluster uses; `invoke test` sets them)")
    return os.environ["CALICOLAB_LAB_PREFIX"], os.environ["CALICOLAB_LAB_SUBNET"]


@pytest.fixture
def lane(lane_settings, tmp_path) -> Iterator[Lane]:
    prefix, subnet = lane_settings
    made = Lane(prefix, subnet, tmp_path / "run", tmp_path / "reports")
    lock_path = Path(tempfile.gettempdir()) / f"calicolab-lab-lane-{prefix}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one test at a time on this lane, across xdist workers
        try:
            yield made
        finally:
            made.invoke("destroy", timeout=300)  # whatever the test did, the lane ends clean

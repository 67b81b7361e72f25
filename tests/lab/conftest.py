"""Tests against the real lab (node containers through Vagrant's docker provider).

They need the Docker engine and lanes of their own: a prefix and one or more free /24s that no
other cluster on the machine uses, given as CALICOLAB_LAB_PREFIX and CALICOLAB_LAB_SUBNET (a
comma-separated list; `invoke test` gives two). Without either the tests skip and say which is
missing. Each subnet is a lane (the first takes the prefix as given, the n-th `<prefix>-n`); a
test takes whichever lane is free, tests wait their turn when all are taken (a file lock per
lane, across xdist workers), and every test ends with `invoke destroy` on its lane, so a
failing test leaves nothing behind either.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit import LANE_VARS, Lane, lane_names

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
def lane_settings(docker_engine) -> list[tuple[str, str]]:
    missing = [v for v in LANE_VARS if not os.environ.get(v)]
    if missing:
        pytest.skip(f"lab tests need a lane of their own: set {' and '.join(missing)} (a prefix and a free "
                    "/24 no other cluster uses; `invoke test` sets them)")
    return lane_names(os.environ["CALICOLAB_LAB_PREFIX"], os.environ["CALICOLAB_LAB_SUBNET"])


LANE_WAIT_S = 3600  # every lab test together takes minutes; an hour means a lock held by a hung process


def _take_a_lane(lanes: list[tuple[str, str]]) -> tuple[tuple[str, str], object]:
    """The first free lane, locked; polled while all are taken."""
    deadline = time.monotonic() + LANE_WAIT_S
    while True:
        for prefix, subnet in lanes:
            lock = (Path(tempfile.gettempdir()) / f"calicolab-lab-lane-{prefix}.lock").open("w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return (prefix, subnet), lock
            except BlockingIOError:
                lock.close()
        if time.monotonic() > deadline:
            pytest.fail(f"no lab lane came free within {LANE_WAIT_S} s: {lanes} stay locked "
                        f"({tempfile.gettempdir()}/calicolab-lab-lane-*.lock; a hung test?)", pytrace=False)
        time.sleep(0.5)


@pytest.fixture
def lane(lane_settings, tmp_path) -> Iterator[Lane]:
    (prefix, subnet), lock = _take_a_lane(lane_settings)
    made = Lane(prefix, subnet, tmp_path / "run", tmp_path / "reports")
    with lock:  # one test at a time on this lane
        try:
            yield made
        finally:
            made.invoke("destroy", timeout=300)  # whatever the test did, the lane ends clean

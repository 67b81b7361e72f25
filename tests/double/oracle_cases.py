"""Golden outputs of the real upstream code (../shared/oracles, or $CALICOLAB_ORACLES), read at
collection time so every case in a file becomes its own test, named by the case's `name`.

A missing folder or file is not a skip: the tests collect one case that fails with one line
naming what is missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MISSING = "oracle-missing"


def oracle_dir() -> Path:
    return Path(os.environ.get("CALICOLAB_ORACLES") or REPO.parent / "shared" / "oracles")


def oracle_params(file_name: str) -> list[Any]:
    """pytest params for every case of one oracle file, or one failing stand-in when it is absent."""
    path = oracle_dir() / file_name
    if not path.is_file():
        return [pytest.param({"name": MISSING, "missing": str(path)}, id=MISSING)]
    cases = json.loads(path.read_text())["cases"]
    return [pytest.param(case, id=case["name"]) for case in cases]


def require(case: dict[str, Any]) -> dict[str, Any]:
    """The case itself; fails the test in one line when the oracle file was not there."""
    if case.get("name") == MISSING:
        pytest.fail(f"oracle file {case['missing']} is missing (set CALICOLAB_ORACLES to the oracles folder)",
                    pytrace=False)
    return case

"""The config layer's reader of the process environment: a setting's CALICOLAB_<KEY> variable.

Only this module and calicolab/core/config.py read CALICOLAB_* variables; every other module
gets its values from the configuration (`python -m calicolab.layers` checks it). This module
imports nothing of the project, so paths.py, which config.py itself imports, can read a
machine setting (the image namespace) at import time through it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PREFIX = "CALICOLAB_"


def variable(key: str) -> str:
    """The environment variable of a setting: CALICOLAB_<KEY>."""
    return PREFIX + key.upper()


def value(key: str, environ: Mapping[str, str] | None = None) -> str:
    """The setting's variable, stripped; "" when unset."""
    return (os.environ if environ is None else environ).get(variable(key), "").strip()

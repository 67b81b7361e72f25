"""The run folder's state file: what exists, how to reach it, which Calico it runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from calicolab.config import ClusterConfig


def path(cfg: ClusterConfig) -> Path:
    return cfg.run_path / "state.json"


def read(cfg: ClusterConfig) -> dict[str, Any]:
    try:
        return json.loads(path(cfg).read_text())
    except (OSError, json.JSONDecodeError):  # absent or unreadable: nothing known yet
        return {}


def _write(cfg: ClusterConfig, data: dict[str, Any]) -> None:
    cfg.run_path.mkdir(parents=True, exist_ok=True)
    tmp = path(cfg).with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path(cfg))


def update(cfg: ClusterConfig, **values: Any) -> dict[str, Any]:
    data = read(cfg)
    data.update(values)
    _write(cfg, data)
    return data


def clear(cfg: ClusterConfig, *keys: str) -> None:
    data = read(cfg)
    if data:
        for key in keys:
            data.pop(key, None)
        _write(cfg, data)

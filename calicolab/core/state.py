"""The run folder's state file: what exists, how to reach it, which Calico it runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from calicolab.core import config
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError

CALICO_LABELS = {"double": "the project's Calico double (not real Calico)",
                 "upstream": "real Calico (calico/node image, calicoctl release)",
                 "unknown": "none (no cluster was provisioned in this run)"}


def calico_label(source: str) -> str:
    """What a report says about the Calico tested (state.json's calico_source)."""
    return CALICO_LABELS.get(source, source)


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


def running_config(cfg: ClusterConfig, asked: dict[str, Any], environ: dict[str, str] | None = None
                   ) -> ClusterConfig:
    """The configuration of the cluster this run folder holds, when one is up: later tasks
    (provision, verify, upgrade, destroy) act on what was brought up, not on cluster.yaml.
    A flag that contradicts the running cluster is refused rather than silently ignored; a live
    setting given to this task (flag or variable: the budgets, the reports folder) is taken."""
    effective = cfg.run_path / "cluster.json"
    if not (read(cfg).get("ssh") and effective.exists()):
        return cfg
    running = config.from_effective(effective)
    current = running.to_json()
    for key, value in asked.items():
        path = config.OVERRIDABLE.get(key)
        if value in (None, "") or path is None:
            continue
        seen: Any = current
        for part in path:
            seen = seen.get(part) if isinstance(seen, dict) else None
        if seen is not None and str(seen).lower() != str(value).lower() and not config.SETTINGS[key].live:
            hint = (f"`invoke upgrade --{key} {value}`" if key in ("etcd", "docker", "calico")
                    else "`invoke destroy` first")
            raise UserError(f"the cluster in {cfg.run_path} runs with {key} {seen}, not {value}: "
                            f"use {hint}, or another --run-dir")
    live = {key: config.setting_value(cfg, key) for key in config.given_live(asked, environ)}
    return config.with_plants(config.with_settings(running, live), cfg.plants)

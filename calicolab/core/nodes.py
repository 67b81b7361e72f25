"""The one way to reach the cluster's nodes: SSH settings (Vagrant's, kept in the run
folder's state) turned into connected calicolab.core.remote.Node objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from calicolab.core import state
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.core.remote import Node, SshTarget

PATIENCE = 15  # seconds to wait for a node's TCP connect, SSH banner and authentication


def connect(target: SshTarget | Mapping[str, Any], ip: str, *, patience: float = PATIENCE) -> Node:
    """One node; patience bounds every wait before the first command (a paused node accepts
    TCP through docker-proxy but never sends the SSH banner)."""
    ssh = target if isinstance(target, SshTarget) else SshTarget(**target)
    return Node(ssh, ip, connect_timeout=patience)


def cluster_nodes(cfg: ClusterConfig, ssh: Mapping[str, Mapping[str, Any]] | None, *,
                  patience: float = PATIENCE) -> dict[str, Node]:
    """Every node of cfg, in cfg's order, from the per-node SSH settings."""
    ssh = ssh or {}
    missing = [n.name for n in cfg.nodes if n.name not in ssh]
    if missing:
        raise UserError(f"no SSH settings for {', '.join(missing)} in {cfg.run_path}: the cluster is "
                        "not up, run `invoke up`")
    return {n.name: connect(ssh[n.name], n.ip, patience=patience) for n in cfg.nodes}


def from_run(cfg: ClusterConfig, *, patience: float = PATIENCE) -> dict[str, Node]:
    """The nodes of the cluster in cfg's run folder."""
    return cluster_nodes(cfg, state.read(cfg).get("ssh"), patience=patience)


def close_all(nodes: Mapping[str, Node] | list[Node]) -> None:
    for node in (nodes.values() if isinstance(nodes, Mapping) else nodes):
        node.close()

"""What every provisioning step receives: the cluster config, the node and its platform."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from calicolab.core.config import ClusterConfig
from calicolab.core.config import Node as NodeSpec
from calicolab.core.remote import Node
from calicolab.stack import downloads
from provision.platform import Platform
from provision.steps import Change


@dataclass
class Context:
    cfg: ClusterConfig
    node: Node
    spec: NodeSpec
    platform: Platform
    section: str = ""
    facts: dict[str, str] = field(default_factory=dict)  # decided once per run, e.g. calico_source
    lock: downloads.Lock | None = None  # the lock file of upstream downloads, shared by the nodes
    say: Callable[[str], None] = print

    def artifacts_lock(self) -> downloads.Lock:
        if self.lock is None:
            self.lock = downloads.Lock.load(self.cfg.lock_path)
        return self.lock

    def change(self, step: str, changed: bool, detail: str = "") -> Change:
        return Change(self.node.name, self.section, step, changed, detail)

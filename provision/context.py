"""What every provisioning step receives: the cluster config, the node and its platform."""

from __future__ import annotations

from dataclasses import dataclass, field

from calicolab.core.config import ClusterConfig
from calicolab.core.config import Node as NodeSpec
from calicolab.core.remote import Node
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

    def change(self, step: str, changed: bool, detail: str = "") -> Change:
        return Change(self.node.name, self.section, step, changed, detail)

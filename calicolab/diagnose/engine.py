"""The checks' engine: the cluster view they run against (live nodes or tests' fakes), the
result helpers and the loop that runs a set of checks on every node, a node that cannot be
reached giving one failing finding instead of stopping the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from calicolab.core.config import ClusterConfig
from calicolab.core.config import Node as NodeSpec
from calicolab.core.errors import UserError
from calicolab.core.remote import CannotRun, CommandUnavailable
from calicolab.diagnose.diagnoses import (
    COMMAND_UNAVAILABLE,
    FAIL,
    NODE_UNREACHABLE,
    PASS,
    Diagnosis,
    Finding,
)
from calicolab.stack import probes
from calicolab.stack.etcd_tls import CLIENT
from calicolab.stack.probes import NodeLike

T = TypeVar("T")

@dataclass
class ClusterView:
    """The configuration and the nodes the checks run against."""

    cfg: ClusterConfig
    nodes: dict[str, NodeLike]
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def spec(self, node: NodeLike) -> NodeSpec:
        return self.cfg.node(node.name)

    def peers(self, node: NodeLike) -> list[NodeSpec]:
        return list(self.cfg.peers_of(node.name))

    @property
    def scheme(self) -> str:
        return self.cfg.etcd_scheme

    @property
    def curl_opts(self) -> str:
        """The client certificate when etcd's client side runs over TLS (setting etcd_tls)."""
        if not self.cfg.etcd_tls:
            return ""
        return f"--cacert {CLIENT.ca} --cert {CLIENT.cert} --key {CLIENT.key}"

    def etcd_url(self, ip: str, path: str) -> str:
        return f"{self.scheme}://{ip}:2379{path}"

    def http(self, node: NodeLike, url: str, **kw) -> probes.HttpAnswer:
        return probes.http(node, url, self.curl_opts, **kw)

    def remember(self, node: NodeLike, what: str, make: Callable[[], T]) -> T:
        """One probe answer per node and run: several checks ask the same question."""
        key = (node.name, what)
        if key not in self._cache:
            self._cache[key] = make()
        return cast(T, self._cache[key])

def passed(check: str, node: str, seen: str) -> Finding:
    return Finding(check, node, PASS, seen)

def failed(check: str, node: str, seen: str, diagnosis: Diagnosis) -> Finding:
    return Finding(check, node, FAIL, seen, diagnosis)

@dataclass(frozen=True)
class Check:
    name: str
    per_node: Callable[[ClusterView, NodeLike], Finding] | None = None
    cluster: Callable[[ClusterView], Finding] | None = None

def unavailable(check: str, err: CommandUnavailable) -> Finding:
    """The finding for a check whose command did not run: what is missing, never a component verdict."""
    res = err.result
    missing = res.cannot_run or CannotRun(res.program, f"exit {res.rc}")
    seen = f"`{res.cmd}` did not run ({missing.command}: {missing.why}, exit {res.rc})"
    where = f"{res.node}: `{missing.command}` {missing.why} (PATH {res.path or 'sudo secure_path'})"
    return failed(check, res.node, seen, COMMAND_UNAVAILABLE.at(where))

def guarded(check: str, node: str, fn: Callable[[], Finding]) -> Finding:
    try:
        return fn()
    except UserError as err:  # the node went away during the check
        return failed(check, node, str(err), NODE_UNREACHABLE.at(node))
    except CommandUnavailable as err:  # the check's command is missing: say so, not "down"
        return unavailable(check, err)

def first_failure(findings: Iterable[Finding]) -> Finding | None:
    return next((f for f in findings if not f.ok), None)

def explain(findings: Iterable[Finding]) -> str:
    """The findings that are not a plain pass, one per line (for assertion messages)."""
    lines = [f.line() for f in findings if f.result != PASS]
    return "\n".join(lines) if lines else "every check passes"

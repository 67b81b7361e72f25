"""Versions as data (versions.yaml) and the compatibility rules enforced before a run."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import yaml

from calicolab.core.errors import UserError
from calicolab.core.paths import VERSIONS_FILE


def parse(version: str) -> tuple[int, int, int]:
    major, minor, patch = version.lstrip("v").split(".")
    return int(major), int(minor), int(patch)


@dataclass(frozen=True)
class Rule:
    component: str
    refuses_from: tuple[int, int]
    reason: str


# Why each line is refused: the stack needs etcd's v2 keyspace and Docker's cluster store.
RULES = (
    Rule("etcd", (3, 6), "etcd 3.6 removed the v2 API that Docker's cluster store and Calico 2.6 "
         "need: stay on 3.5 or older"),
    Rule("docker", (23, 0), "Docker 23 removed cluster-store, so Calico's global-scope network "
         "cannot work: stay on 20.10"),
    Rule("calico", (3, 0), "Calico 3 dropped the Docker libnetwork driver (--driver calico): "
         "stay on 2.6.x"),
)


@cache
def catalogue() -> dict[str, dict[str, dict[str, str]]]:
    data = yaml.safe_load(VERSIONS_FILE.read_text())
    return {comp: {str(v): src for v, src in versions.items()} for comp, versions in data.items()}


def family(provider: str) -> str:
    """The versions.yaml column: "lab" for the docker provider and for Debian VMs
    ("libvirt:debian12", ClusterConfig.install_target: both install from Debian's archive), "vm" for
    the CentOS 7 VMs."""
    return "lab" if provider == "docker" or provider.endswith(":debian12") else "vm"


def source(component: str, version: str, provider: str) -> str:
    """Where a version comes from for a provider (a Debian suite, 'upstream', 'double'...)."""
    return catalogue()[component][version][family(provider)]


def etcd_needs_v2_flag(version: str) -> bool:
    return parse(version)[:2] >= (3, 4)


def check_versions(versions: dict[str, str], provider: str) -> None:
    """Refuse a combination the stack cannot run, or a version the provider cannot install."""
    for rule in RULES:
        if parse(versions[rule.component])[:2] >= rule.refuses_from:
            raise UserError(f"{rule.component} {versions[rule.component]} refused: {rule.reason}")
    fam = family(provider)
    for component, version in versions.items():
        known = catalogue().get(component, {})
        if fam not in known.get(version, {}):
            offered = ", ".join(v for v, src in known.items() if fam in src) or "none"
            raise UserError(f"{component} {version} is not available for the {provider} "
                            f"provider: choose one of {offered} (versions.yaml)")


def upgrade_path(component: str, current: str, target: str, provider: str) -> list[str]:
    """The versions to pass through, one minor at a time (etcd supports rolling upgrades
    only between adjacent minors); within a minor, straight to the target patch."""
    if parse(target) < parse(current):
        if component == "etcd" and parse(target)[:2] < parse(current)[:2]:
            # etcd's own rule: a member below the cluster version refuses to start ("cluster cannot
            # be downgraded"; etcdserver/api/membership, mustDetectDowngrade), and the cluster
            # version moved when every member ran the newer minor.
            raise UserError(f"etcd {target} is older than the running {current}: etcd forbids the downgrade "
                            f"once the cluster version moved to {parse(current)[0]}.{parse(current)[1]} (a member "
                            "below it refuses to start: 'cluster cannot be downgraded'); roll one member back "
                            "before the last one upgrades (invoke upgrade.drill --etcd ... --rollback) or restore a "
                            "backup taken before the upgrade")
        raise UserError(f"{component} {target} is older than the running {current}: downgrades "
                        "are not rehearsed (rebuild the cluster at that version instead)")
    fam = family(provider)
    offered = sorted((v for v, src in catalogue().get(component, {}).items() if fam in src), key=parse)
    if target not in offered:
        raise UserError(f"{component} {target} is not available for the {provider} provider: "
                        f"choose one of {', '.join(offered) or 'none'} (versions.yaml)")
    path: list[str] = []
    here, goal = parse(current)[:2], parse(target)[:2]
    while here < goal:
        # Next minor of the same major (etcd 3.x is the only line this stack can run).
        here = (here[0], here[1] + 1) if here[0] == goal[0] else goal
        step = [v for v in offered if parse(v)[:2] == here]
        if not step:
            raise UserError(f"no {component} {here[0]}.{here[1]}.x for the {provider} provider in "
                            f"versions.yaml: {component} must pass through every minor version")
        path.append(target if here == goal else step[-1])
    if not path and target != current:
        path.append(target)  # a patch upgrade
    return path


def newest(component: str, provider: str) -> str:
    """The newest version of a component the provider can install (a rehearsal's target)."""
    fam = family(provider)
    return max((v for v, src in catalogue()[component].items() if fam in src), key=parse)

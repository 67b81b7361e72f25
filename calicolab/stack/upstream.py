"""Which Calico a run can test: upstream (the calico/node image and the calicoctl release) only
when every upstream part can be obtained and verified for this run, else the project's double
(on the lab), said in one line with the reason. Decided in preflight, before any box or node
exists, from what the host sees: a registry that answers as a registry (not merely a host that
answers: Docker Hub's /v2/ says 401 with its API header; a proxy's error page is not that), and
release files that are pinned, locked, or lockable here and answer at their URL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from calicolab.core import shell, versions
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.core.paths import IMAGE_NAMESPACE
from calicolab.stack import downloads, probes, registry

DOCKER_HUB = "https://registry-1.docker.io"
REGISTRY_HEADER = "docker-distribution-api-version"


@dataclass(frozen=True)
class HttpSeen:
    status: int  # 0: no HTTP answer at all
    headers: dict[str, str]
    error: str = ""


Probe = Callable[[str, bool], HttpSeen]  # (url, follow redirects) -> what came back


def http_probe(url: str, follow: bool = False, proxy: dict[str, str] | None = None) -> HttpSeen:
    """HEAD-like GET from the host with curl: the status and headers, whatever the status is
    (curl exits 0 on a 401 or a 503; the status is what counts). With the nodes' proxy settings,
    through the same proxy the nodes will use."""
    args = ["curl", "-sS", "-m", "10", "-o", "/dev/null", "-D", "-", "-w", "\nhttp-status=%{http_code}"]
    via = (proxy or {}).get("https_proxy" if url.startswith("https:") else "http_proxy")
    if via:
        args += ["--proxy", via, "--noproxy", (proxy or {}).get("no_proxy", "")]
    out = shell.run([*args, *(["-L"] if follow else []), url], check=False, timeout=30)
    headers: dict[str, str] = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith("http-status="):
            headers[key.strip().lower()] = value.strip()
    status = probes.tail_value(out.stdout, "http-status")
    return HttpSeen(int(status) if status.isdigit() else 0, headers, (out.stderr.strip().splitlines() or [""])[-1])


def registry_of(image: str) -> str:
    """The registry an image name is pulled from (Docker's rule: a first part with a dot or a
    port, or localhost, is a registry host)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return f"https://{first}"
    return DOCKER_HUB


def registry_answers(url: str, probe: Probe) -> str:
    """'' when url is a Docker registry that answers, else why not."""
    seen = probe(f"{url.rstrip('/')}/v2/", False)
    if seen.status == 0:
        return f"registry {url} does not answer ({seen.error or 'no HTTP answer'})"
    if seen.status not in (200, 401) or REGISTRY_HEADER not in seen.headers:
        return f"{url}/v2/ answers HTTP {seen.status} without the registry API header (not a Docker registry)"
    return ""


def file_answers(artifact: downloads.Artifact, probe: Probe) -> str:
    seen = probe(artifact.source, True)
    if seen.status != 200:
        return f"{artifact.key} at {artifact.source}: " + (f"HTTP {seen.status}" if seen.status else
                                                            f"no answer ({seen.error or 'no HTTP answer'})")
    return ""


def upstream_files(cfg: ClusterConfig) -> list[tuple[downloads.Artifact, bool]]:
    """The release files an upstream run downloads, each with whether it may be locked on first
    use: calicoctl (no published checksum) may; etcd's archive (on VMs, when versions.yaml says
    upstream) must be pinned or recorded by `invoke lock --record`."""
    base = cfg.upstream.download_base
    files = [(downloads.calicoctl_binary(cfg.versions.calicoctl, base), True)]
    if not cfg.is_lab and versions.source("etcd", cfg.versions.etcd, cfg.install_target) == "upstream":
        files.append((downloads.etcd_archive(cfg.versions.etcd, base), False))
    return files


def upstream_images(cfg: ClusterConfig) -> list[downloads.Artifact]:
    """The images an upstream run pulls, named as provisioning names them (provision/calico.py,
    provision/workloads.py): the lock's keys must be the same."""
    up = cfg.upstream
    return [downloads.image(f"{up.calico_node_image}:{cfg.versions.calico}"),
            downloads.image(f"{up.busybox_image}:latest")]


def upstream_artifacts(cfg: ClusterConfig) -> list[downloads.Artifact]:
    """Every artifact an upstream run uses, in the order a run meets them."""
    return [a for a, _ in upstream_files(cfg)] + upstream_images(cfg)


RECORD_HINT = "run `invoke lock --record` on a trusted machine that reaches it, review and commit artifacts.lock"


@dataclass(frozen=True)
class Decision:
    source: str  # upstream | double
    reason: str


def registries(cfg: ClusterConfig) -> list[str]:
    """The registries the nodes pull the images from (a registry mirror serves Docker Hub's)."""
    up = cfg.upstream
    found = [registry.parse_image(a.source, up.registry_mirror, up.insecure_registry).registry
             for a in upstream_images(cfg)]
    return list(dict.fromkeys(found))


def unverifiable(cfg: ClusterConfig, lock: downloads.Lock, need_lock: bool) -> list[str]:
    """Artifacts of an upstream run that could not be verified: in strict mode (or for `auto`,
    which takes upstream only with a recorded lock) everything neither pinned nor locked; an
    upstream etcd archive always needs a pin or the lock (it is never locked on first use)."""
    found = []
    lockable = dict(upstream_files(cfg))
    for artifact in upstream_artifacts(cfg):
        if lock.expected(artifact) is not None:
            continue
        if cfg.upstream.strict:
            found.append(f"{artifact.key} is neither pinned nor locked and strict_artifacts is on: {RECORD_HINT}")
        elif not lockable.get(artifact, True):
            found.append(f"{artifact.key} has no published sha256 pinned in calicolab/stack/downloads.py "
                         f"(pinned: {', '.join(sorted(downloads.ETCD_PINS))}) and is not locked: pick a pinned "
                         f"version, or {RECORD_HINT}")
        elif need_lock:
            found.append(f"{artifact.key} is not locked yet (auto takes upstream only with every artifact pinned "
                         f"or locked): {RECORD_HINT}, or ask for calico_source upstream to lock it on first use")
    return found


def missing_parts(cfg: ClusterConfig, lock: downloads.Lock, probe: Probe, need_lock: bool = False) -> list[str]:
    """What keeps an upstream run from completing, in the order a run would meet it."""
    missing = []
    for url in registries(cfg):
        why = registry_answers(url, probe)
        if why:
            missing.append(f"{why}: set upstream.registry_mirror (CALICOLAB_REGISTRY_MIRROR) to a registry the "
                           "nodes reach")
    missing += unverifiable(cfg, lock, need_lock)
    for artifact, _ in upstream_files(cfg):
        why = file_answers(artifact, probe)
        if why:
            missing.append(f"{why}: set upstream.download_base (CALICOLAB_DOWNLOAD_BASE) to an artifact server "
                           "that mirrors github.com")
    return missing


def decide(cfg: ClusterConfig, lock: downloads.Lock, probe: Probe | None = None) -> Decision:
    """calico_source resolved for this run; a choice that cannot complete is refused here."""
    if probe is None:
        env = cfg.upstream.proxy_env(cfg.nodes)
        probe = lambda url, follow=False: http_probe(url, follow, env)  # noqa: E731
    if cfg.calico_source == "double":
        if not cfg.carries_double:
            raise UserError("the Calico double runs where its image is baked in: the lab (provider docker) and "
                            "the Debian 12 VM box (--provider libvirt --os debian12); a CentOS box tests real "
                            "Calico: use calico_source upstream or auto")
        return Decision("double", "asked for (calico_source double, its image side-loaded on the nodes)")
    # Where the double is the alternative, auto never takes upstream on trust: only with every
    # artifact pinned or locked. (On a CentOS box upstream is the only Calico there is.)
    missing = missing_parts(cfg, lock, probe, need_lock=cfg.calico_source == "auto" and cfg.carries_double)
    if not missing:
        verified = "every artifact pinned or locked" if all(
            lock.expected(a) for a in upstream_artifacts(cfg)) else "unlocked artifacts locked on first use"
        return Decision("upstream", f"every upstream part answers ({cfg.upstream.calico_node_image}:"
                                    f"{cfg.versions.calico}, calicoctl {cfg.versions.calicoctl}; {verified})")
    if cfg.calico_source == "auto" and cfg.carries_double:
        return Decision("double", f"upstream cannot complete: {missing[0]}")
    raise UserError(f"calico_source {cfg.calico_source} cannot complete on the {cfg.provider} provider: "
                    f"{missing[0]}" + ("" if cfg.carries_double else " (a CentOS box has no Calico double)"))


DOUBLE_TITLE = "calico-node double"  # the double image's org.opencontainers.image.title label


@dataclass(frozen=True)
class Seen:
    """Which Calico a node runs, by inspecting the calico-node container and its image."""

    source: str  # double | upstream | unknown
    text: str  # the image as it ran and its digest


def inspect_running(node) -> Seen:
    """Decided from what runs, not from the setting: the image's labels and digest (the double
    says what it is in its labels, even when a mirror serves it as calico/node)."""
    res = node.run("docker inspect -f '{{.Config.Image}} {{.Image}}' calico-node")
    if not res.ok or len(res.stdout.split()) != 2:
        return Seen("unknown", "no calico-node container to inspect")
    image, image_id = res.stdout.split()
    meta = node.run(f"docker image inspect -f '{{{{json .Config.Labels}}}} {{{{json .RepoDigests}}}}' {image}")
    try:
        labels_json, digests_json = meta.stdout.strip().rsplit(" ", 1)  # Docker's JSON list has no spaces
        labels, digests = json.loads(labels_json) or {}, json.loads(digests_json) or []
    except (ValueError, TypeError):
        labels, digests = {}, []
    digest = next((d.split("@", 1)[1] for d in digests if "@" in d), image_id)
    if labels.get("org.opencontainers.image.title") == DOUBLE_TITLE:
        served = f"image {image}" if image.startswith(f"{IMAGE_NAMESPACE}/") else f"served as {image}"
        return Seen("double", f"{served}, {digest}")
    return Seen("upstream", f"{image}, {digest}")


# ---- recording the lock on a trusted machine (`invoke lock --record`) -------------------

@dataclass(frozen=True)
class Recorded:
    artifact: downloads.Artifact
    value: str  # sha256 of a file, digest of an image
    via: str  # where it was resolved, or the pin's origin
    recorded: bool  # False: pinned, nothing to record


def resolve(cfg: ClusterConfig, client: registry.Client | None = None,
            say: Callable[[str], None] = lambda _m: None) -> list[Recorded]:
    """Fetch and hash every artifact an upstream run uses, from the configured places (download
    base or GitHub; the registry, mirror and insecure registry the nodes pull from). A pinned one
    is not fetched (its pin is what a run checks). Raises UserError at the first that cannot be
    resolved."""
    up = cfg.upstream
    client = client or registry.Client(up.proxy_env(cfg.nodes) or None)
    found = []
    for artifact in upstream_artifacts(cfg):
        if artifact.pin:
            found.append(Recorded(artifact, artifact.pin.sha256, f"pinned: {artifact.pin.published}", False))
            continue
        say(f"    resolving {artifact.key} ...")
        if artifact.kind == "file":
            found.append(Recorded(artifact, registry.file_sha256(artifact.source, client), artifact.source, True))
        else:
            ref = registry.parse_image(artifact.source, up.registry_mirror, up.insecure_registry)
            found.append(Recorded(artifact, registry.image_digest(ref, client), ref.manifest_url, True))
    return found


def record_lock(cfg: ClusterConfig, path, client: registry.Client | None = None,
                say: Callable[[str], None] = lambda _m: None) -> tuple[list[Recorded], dict[str, str]]:
    """Resolve everything, then write the lock once (nothing is written when anything fails).
    Returns what was resolved and the earlier values that changed (key -> old value)."""
    resolved = resolve(cfg, client, say)
    lock = downloads.Lock.load(path)
    changed = {}
    for item in resolved:
        if not item.recorded:
            continue
        before = lock.entries.get(item.artifact.key)
        if before:
            old = before.get("sha256") or before.get("digest", "")
            if old != item.value:
                changed[item.artifact.key] = old
        lock.record(item.artifact, item.value, save=False)
    lock.save()
    return resolved, changed

"""Guide section 5: Docker with etcd as its cluster store."""

from __future__ import annotations

import json

from calicolab.core.config import Node as NodeSpec
from calicolab.core.polling import Timeout, wait_for
from calicolab.stack import etcd_tls, parsers
from provision.context import Context
from provision.etcd_tls import DOCKER_RESTART
from provision.steps import Change, ensure_absent, ensure_file, unit_active

SECTION = "5 docker"
DAEMON_JSON = "/etc/docker/daemon.json"
# Docker's documented way to pull through a proxy: the daemon's environment, from a drop-in.
PROXY_DROPIN = "/etc/systemd/system/docker.service.d/calicolab-proxy.conf"


def render_daemon_json(node: NodeSpec, registry_mirrors: list[str] | None = None, tls: bool = False,
                       insecure_registries: list[str] | None = None) -> str:
    """The guide's daemon.json: each node's Docker keeps its network data in its own etcd
    (with etcd_tls, over TLS: libnetwork takes the kv.* options as its etcd client's files)."""
    data: dict[str, object] = {"cluster-store": cluster_store(node)}
    if tls:
        files = etcd_tls.CLIENT
        data["cluster-store-opts"] = {"kv.cacertfile": files.ca, "kv.certfile": files.cert,
                                      "kv.keyfile": files.key}
    if registry_mirrors:
        data["registry-mirrors"] = registry_mirrors
    if insecure_registries:
        data["insecure-registries"] = insecure_registries
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def render_proxy_dropin(env: dict[str, str]) -> str:
    lines = [f'Environment="{k.upper()}={v}"' for k, v in sorted(env.items())]
    return "# Written by calicolab from cluster.yaml upstream.*_proxy.\n[Service]\n" + "\n".join(lines) + "\n"


def cluster_store(node: NodeSpec) -> str:
    return f"etcd://{node.ip}:2379"


def install(ctx: Context) -> Change:
    want = ctx.cfg.versions.docker
    have = ctx.platform.installed_version(ctx.node, "docker")
    if have == want:
        return ctx.change("install docker", False, f"docker {want} present")
    ctx.platform.install(ctx.node, "docker", want, ctx.cfg.install_target)
    return ctx.change("install docker", True, f"docker {have or 'none'} -> {want}")


def configure_and_restart(ctx: Context) -> Change:
    up = ctx.cfg.upstream
    daemon_json = render_daemon_json(ctx.spec, [up.registry_mirror] if up.registry_mirror else None,
                                     tls=ctx.cfg.etcd_tls,
                                     insecure_registries=[up.insecure_registry] if up.insecure_registry else None)
    changed = ensure_file(ctx.node, DAEMON_JSON, daemon_json)
    env = up.proxy_env(ctx.cfg.nodes)
    if env:
        proxy_changed = ensure_file(ctx.node, PROXY_DROPIN, render_proxy_dropin(env))
    else:
        proxy_changed = ensure_absent(ctx.node, PROXY_DROPIN)
    if proxy_changed:
        ctx.node.run("systemctl daemon-reload", check=True)
        changed = True
    certs_changed = ctx.node.run(f"test -e {DOCKER_RESTART}").ok  # new client certificates
    if changed or certs_changed or not unit_active(ctx.node, "docker"):
        ctx.node.run("systemctl enable docker >/dev/null 2>&1; systemctl restart docker",
                     check=True, timeout=120)
        ctx.node.run(f"rm -f {DOCKER_RESTART}")
        changed = True
    want = cluster_store(ctx.spec)
    try:
        wait_for(lambda: parsers.docker_info_cluster_store(ctx.node.run("docker info").stdout),
                 lambda seen: seen == want, f"{ctx.node.name}: docker info Cluster Store", timeout=60)
    except Timeout as err:
        raise RuntimeError(f"{err}; is etcd reachable at {want}? see `journalctl -u docker`") from None
    return ctx.change("daemon.json, restart", changed, f"Cluster Store: {want}")


STEPS = (install, configure_and_restart)

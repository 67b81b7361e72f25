"""Guide section 6: calico-node as a systemd unit, and calicoctl.

The same unit and environment run the real calico/node image or the project's Calico double
(calico_double/); the source is chosen explicitly (config or flag) and recorded in every report.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from calicolab.core import privilege
from calicolab.core.config import ClusterConfig
from calicolab.core.config import Node as NodeSpec
from calicolab.core.errors import UserError
from calicolab.core.paths import ROOT
from calicolab.core.polling import Timeout, wait_for
from calicolab.stack import downloads, etcd_tls, node_images, probes
from provision import fetch
from provision.context import Context
from provision.steps import Change, ensure_file, unit_active, unit_enabled

SECTION = "6 calico"
ENV_FILE = "/etc/calico/calico.env"
CALICOCTL_CFG = "/etc/calico/calicoctl.cfg"
UNIT_FILE = "/etc/systemd/system/calico-node.service"
CALICOCTL = "/usr/local/bin/calicoctl"
CALICOCTL_SCRIPT = "/usr/local/lib/calico-double/calicoctl"  # found by the wrapper as ../lib/calico-double/
HOST_PYTHON_OK = "import sys; sys.exit(sys.version_info < (3, 7))"
STARTED = "Calico node started successfully"
# rc.local prints STARTED before runit starts any service (calico/node v2.6.1), so it is not
# readiness: felix runs, BIRD answers on its socket, both Docker plugins listen.
READY_SOCKETS = ["/var/run/calico/bird.ctl", "/run/docker/plugins/calico.sock", "/run/docker/plugins/calico-ipam.sock"]


@dataclass(frozen=True)
class CalicoArtifacts:
    source: str        # upstream | double
    image: str
    saved: node_images.NodeImage | None  # the double: built on the runner, copied to each node

    @classmethod
    def for_config(cls, cfg: ClusterConfig, source: str) -> CalicoArtifacts:
        if source == "upstream":
            return cls("upstream", f"{cfg.upstream.calico_node_image}:{cfg.versions.calico}", None)
        saved = node_images.calico_double(cfg.versions.calico)
        return cls("double", saved.name, saved)


def render_env(cfg: ClusterConfig, node: NodeSpec, art: CalicoArtifacts) -> str:
    tls = etcd_tls.CLIENT if cfg.etcd_tls else etcd_tls.TlsFiles("", "", "")
    lines = [
        f'ETCD_ENDPOINTS="{cfg.etcd_endpoints}"',
        f'ETCD_CA_FILE="{tls.ca}"',
        f'ETCD_CERT_FILE="{tls.cert}"',
        f'ETCD_KEY_FILE="{tls.key}"',
        f'CALICO_NODENAME="{node.name}"',
        'CALICO_NO_DEFAULT_POOLS=""',
        f'CALICO_IP="{node.ip}"',
        'CALICO_IP6=""',
        'CALICO_AS=""',
        "CALICO_LIBNETWORK_ENABLED=true",
        "CALICO_NETWORKING_BACKEND=bird",
    ]
    if art.source == "double":
        lines.append(f'CALICO_DOUBLE_IMAGE="{art.image}"')  # read by the calicoctl double
    return "\n".join(lines) + "\n"


def render_calicoctl_cfg(cfg: ClusterConfig) -> str:
    """calicoctl v1.6's configuration file: when it exists calicoctl reads only it, not the
    ETCD_* environment, so it carries the endpoints and (etcd_tls) the client files."""
    lines = ["apiVersion: v1", "kind: calicoApiConfig", "metadata:", "spec:",
             '  datastoreType: "etcdv2"', f'  etcdEndpoints: "{cfg.etcd_endpoints}"']
    if cfg.etcd_tls:
        tls = etcd_tls.CLIENT
        lines += [f'  etcdKeyFile: "{tls.key}"', f'  etcdCertFile: "{tls.cert}"', f'  etcdCACertFile: "{tls.ca}"']
    return "\n".join(lines) + "\n"


def render_unit(art: CalicoArtifacts, use_privileged: bool, tls: bool = False) -> str:
    """The guide's calico-node.service; `--privileged` is replaced by an equivalent set of
    capabilities where the engine refuses it. With etcd_tls the client certificate folder is
    mounted read-only: ETCD_*_FILE are paths inside the container."""
    priv = " ".join(privilege.flags(use_privileged))
    certs = f"\n -v {etcd_tls.CLIENT_DIR}:{etcd_tls.CLIENT_DIR}:ro \\" if tls else ""
    return f"""[Unit]
Description=calico-node
After=docker.service
Requires=docker.service

[Service]
EnvironmentFile=/etc/calico/calico.env
ExecStartPre=-/usr/bin/docker rm -f calico-node
ExecStart=/usr/bin/docker run --net=host {priv} \\
 --name=calico-node \\
 -e NODENAME=${{CALICO_NODENAME}} \\
 -e IP=${{CALICO_IP}} \\
 -e IP6=${{CALICO_IP6}} \\
 -e CALICO_NETWORKING_BACKEND=${{CALICO_NETWORKING_BACKEND}} \\
 -e AS=${{CALICO_AS}} \\
 -e NO_DEFAULT_POOLS=${{CALICO_NO_DEFAULT_POOLS}} \\
 -e CALICO_LIBNETWORK_ENABLED=${{CALICO_LIBNETWORK_ENABLED}} \\
 -e ETCD_ENDPOINTS=${{ETCD_ENDPOINTS}} \\
 -e ETCD_CA_CERT_FILE=${{ETCD_CA_FILE}} \\
 -e ETCD_CERT_FILE=${{ETCD_CERT_FILE}} \\
 -e ETCD_KEY_FILE=${{ETCD_KEY_FILE}} \\
 -v /var/run/docker.sock:/var/run/docker.sock \\
 -v /var/log/calico:/var/log/calico \\
 -v /run/docker/plugins:/run/docker/plugins \\
 -v /lib/modules:/lib/modules \\
 -v /var/run/calico:/var/run/calico \\{certs}
 {art.image}
ExecStop=-/usr/bin/docker stop calico-node
Restart=on-failure
StartLimitBurst=3
StartLimitInterval=60s

[Install]
WantedBy=multi-user.target
"""


def _artifacts(ctx: Context) -> CalicoArtifacts:
    return CalicoArtifacts.for_config(ctx.cfg, ctx.facts["calico_source"])


def image(ctx: Context) -> Change:
    art = _artifacts(ctx)
    if ctx.node.run(f"docker image inspect {art.image} >/dev/null").ok:
        return ctx.change("calico/node image", False, f"{art.image} present")
    if art.source == "upstream":
        how = fetch.image(ctx.node, downloads.image(art.image), ctx.artifacts_lock(), ctx.cfg.upstream.strict, ctx.say)
        return ctx.change("calico/node image", True, f"{art.image} ({how})")
    if art.saved is None:  # for_config gives the double its saved image; a caller built another
        raise UserError(f"{ctx.node.name}: no saved image for {art.image}: run `invoke box`")
    done = node_images.deliver(ctx.node, art.saved)
    return ctx.change("calico/node image", done.changed, done.detail)


def privileged_works(ctx: Context, image_name: str) -> bool:
    return ctx.node.run(" ".join(shlex.quote(a) for a in privilege.probe_command(image_name))
                        + " >/dev/null 2>&1").ok


def unit(ctx: Context) -> Change:
    art = _artifacts(ctx)
    setting = ctx.cfg.privileged
    # A VM's kernel gives its root every capability, so its engine honours --privileged; only a
    # lab node, itself a container, can lack one (CAP_SYS_RESOURCE, privilege.py). The probe is
    # a container run: 16-17 s on a TCG guest, each provisioning pass.
    probe_ok = setting == "auto" and (not ctx.cfg.is_lab or privileged_works(ctx, art.image))
    use_priv = privilege.resolve(setting, probe_ok)
    changed = ensure_file(ctx.node, ENV_FILE, render_env(ctx.cfg, ctx.spec, art))
    changed |= ensure_file(ctx.node, UNIT_FILE, render_unit(art, use_priv, ctx.cfg.etcd_tls))
    ctx.node.run("mkdir -p /var/log/calico /var/run/calico /run/docker/plugins", check=True)
    if changed:
        ctx.node.run("systemctl daemon-reload && touch /run/calicolab-calico-restart", check=True)
    mode = "--privileged" if use_priv else "capabilities instead of --privileged"
    return ctx.change("calico.env, calico-node.service", changed, mode)


def calicoctl(ctx: Context) -> Change:
    art = _artifacts(ctx)
    cfg_changed = ensure_file(ctx.node, CALICOCTL_CFG, render_calicoctl_cfg(ctx.cfg))
    if art.source == "double":
        content = (ROOT / "calico_double" / "calicoctl.sh").read_text()
        changed = ensure_file(ctx.node, CALICOCTL, content, "0755") or cfg_changed
        # The script always goes beside the wrapper: the host's python3 runs it where it is 3.7+,
        # else the wrapper mounts it into a container of the double's image (which has none).
        script = (ROOT / "calico_double" / "calicoctl").read_text()
        changed |= ensure_file(ctx.node, CALICOCTL_SCRIPT, script, "0755")
        if ctx.node.run(f"python3 -c {shlex.quote(HOST_PYTHON_OK)}").ok:
            where = "on the host's python3"
        else:
            where = "in a container (no python3 3.7+ on the host)"
        return ctx.change("calicoctl", changed, f"the double's calicoctl, {where}, {CALICOCTL_CFG}")
    version = ctx.cfg.versions.calicoctl
    if ctx.node.run(f"{CALICOCTL} version 2>/dev/null | grep -q {version}").ok:
        return ctx.change("calicoctl", cfg_changed, f"calicoctl {version} present, {CALICOCTL_CFG}")
    artifact = downloads.calicoctl_binary(version, ctx.cfg.upstream.download_base)
    staged = f"{CALICOCTL}.download"
    how = fetch.file(ctx.node, artifact, staged, ctx.artifacts_lock(), ctx.cfg.upstream.strict, ctx.say,
                     ctx.cfg.upstream.proxy_env(ctx.cfg.nodes))
    ctx.node.run(f"install -m 0755 {staged} {CALICOCTL} && rm -f {staged}", check=True)
    return ctx.change("calicoctl", True, f"calicoctl {version} from {artifact.source}, {how}")


def start(ctx: Context) -> Change:
    pending = ctx.node.run("test -e /run/calicolab-calico-restart").ok
    if pending or not unit_active(ctx.node, "calico-node") or not unit_enabled(ctx.node, "calico-node"):
        ctx.node.run("systemctl enable calico-node >/dev/null 2>&1; systemctl restart calico-node",
                     check=True, timeout=120)
        ctx.node.run("rm -f /run/calicolab-calico-restart")
        changed = True
    else:
        changed = False
    try:
        wait_for(lambda: ctx.node.run("docker logs calico-node 2>&1").stdout,
                 lambda logs: STARTED in logs, f"{ctx.node.name}: '{STARTED}' in calico-node's log",
                 timeout=90)
        wait_for(lambda: _readiness(ctx), lambda seen: all(seen.values()),
                 f"{ctx.node.name}: calico-felix running and {', '.join(READY_SOCKETS)} listening", timeout=60)
    except Timeout as err:
        tail = ctx.node.run("docker logs --tail 5 calico-node 2>&1; journalctl -u calico-node -n 5 --no-pager; "
                            "tail -n 3 /var/log/calico/*/current")
        seen = err.last if isinstance(err.last, dict) else {}
        missing = [k for k, ok in seen.items() if not ok]
        raise RuntimeError(f"{err}{f' (missing: {missing})' if missing else ''}; last log lines: "
                           f"{tail.stdout.strip()[-600:]}") from None
    return ctx.change("start calico-node", changed, "felix, BIRD and the Docker plugins ready")


def _readiness(ctx: Context) -> dict[str, bool]:
    return {"calico-felix": probes.process_running(ctx.node, "calico-felix"),
            **probes.sockets_listening(ctx.node, READY_SOCKETS)}


STEPS = (image, unit, calicoctl, start)

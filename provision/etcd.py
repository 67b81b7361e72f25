"""Guide section 4: the etcd cluster (installed, configured, started on both nodes together)."""

from __future__ import annotations

from calicolab.core import versions
from calicolab.core.config import ClusterConfig
from calicolab.core.config import Node as NodeSpec
from calicolab.core.deadlines import deadline_factor
from calicolab.core.polling import Timeout, wait_for
from calicolab.core.remote import in_parallel
from calicolab.stack import etcd_query, etcd_tls
from provision import etcd_tls as tls_step
from provision.context import Context
from provision.steps import Change, ensure_file, unit_active, unit_enabled

SECTION = "4 etcd"
CONF = "/etc/etcd/etcd.conf"
DROPIN = "/etc/systemd/system/etcd.service.d/calicolab.conf"
DATA_DIR = "/var/lib/etcd/default.etcd"
HEARTBEAT_MS, ELECTION_MS = 100, 1000  # etcd's defaults


def render_conf(cfg: ClusterConfig, node: NodeSpec) -> str:
    """The guide's etcd.conf, with its fix for `dial tcp 127.0.0.1:4001`
    (a loopback client URL) and, on etcd 3.4+, the v2 API that Docker and Calico 2.6 need.
    With etcd_tls the client URLs are https and need a client certificate; peers stay http."""
    scheme = cfg.etcd_scheme
    lines = [
        f'ETCD_DATA_DIR="{DATA_DIR}"',
        f'ETCD_LISTEN_PEER_URLS="http://{node.ip}:2380"',
        f'ETCD_LISTEN_CLIENT_URLS="{scheme}://{node.ip}:2379,{scheme}://127.0.0.1:2379"',
        f'ETCD_NAME="{node.name}"',
        f'ETCD_INITIAL_ADVERTISE_PEER_URLS="http://{node.ip}:2380"',
        f'ETCD_ADVERTISE_CLIENT_URLS="{scheme}://{node.ip}:2379"',
        f'ETCD_INITIAL_CLUSTER="{cfg.initial_cluster}"',
        'ETCD_INITIAL_CLUSTER_STATE="new"',
    ]
    if versions.etcd_needs_v2_flag(cfg.versions.etcd):
        lines.append('ETCD_ENABLE_V2="true"')
    factor = deadline_factor()
    # Emulated VMs only (libvirt under TCG; or a time_scale set by hand): the lab, KVM and
    # VirtualBox keep the guide's (etcd's default) timers.
    if factor > 1:
        # etcd's tuning guide: heartbeat near the members' round trip, election 10x that. Under
        # TCG the default 100 ms heartbeat alone took a quarter of an idle guest's CPU.
        lines += [f'ETCD_HEARTBEAT_INTERVAL="{HEARTBEAT_MS * factor:.0f}"',
                  f'ETCD_ELECTION_TIMEOUT="{ELECTION_MS * factor:.0f}"']
    if cfg.etcd_tls:
        server = etcd_tls.SERVER
        lines += [f'ETCD_CERT_FILE="{server.cert}"', f'ETCD_KEY_FILE="{server.key}"',
                  f'ETCD_TRUSTED_CA_FILE="{server.ca}"', 'ETCD_CLIENT_CERT_AUTH="true"']
    return "\n".join(lines) + "\n"


def install(ctx: Context) -> Change:
    want = ctx.cfg.versions.etcd
    have = ctx.platform.installed_version(ctx.node, "etcd")
    if have == want:
        return ctx.change("install etcd", False, f"etcd {want} present")
    ctx.platform.install(ctx.node, "etcd", want, ctx.cfg.install_target, ctx.cfg.upstream.download_base,
                         ctx.cfg.upstream.proxy_env(ctx.cfg.nodes))
    return ctx.change("install etcd", True, f"etcd {have or 'none'} -> {want}")


def configure(ctx: Context) -> Change:
    changed = ensure_file(ctx.node, CONF, render_conf(ctx.cfg, ctx.spec))
    if ctx.platform.etcd_dropin and ensure_file(ctx.node, DROPIN, ctx.platform.etcd_dropin):
        ctx.node.run("systemctl daemon-reload", check=True)
        changed = True
    if changed:
        ctx.node.run("touch /run/calicolab-etcd-restart")  # picked up by start_together
    return ctx.change("etcd.conf", changed, CONF)


def start_together(contexts: list[Context]) -> list[Change]:
    """Start (or restart) every member at the same time: one member alone waits for quorum
    and fails with `publish error: etcdserver: request timed out` (the guide's third error)."""
    pending = [c for c in contexts if c.node.run("test -e /run/calicolab-etcd-restart").ok
               or not unit_active(c.node, "etcd") or not unit_enabled(c.node, "etcd")]

    def start(ctx: Context) -> None:
        ctx.node.run("systemctl enable etcd >/dev/null 2>&1; systemctl restart etcd", check=True,
                     timeout=120)
        ctx.node.run("rm -f /run/calicolab-etcd-restart")

    if pending:
        in_parallel([c.node for c in pending], lambda n: start(next(c for c in pending if c.node is n)))
    cfg = contexts[0].cfg
    try:
        wait_for(lambda: etcd_query.health(contexts[0].node, cfg.versions.etcd, cfg.etcd_endpoints).verdict,
                 lambda v: v == "healthy", "etcd cluster health", timeout=60)
    except Timeout as err:
        raise RuntimeError(f"etcd did not become healthy: {err}; see `journalctl -u etcd`") from None
    started = {c.node.name for c in pending}
    return [c.change("start etcd (all together)", c.node.name in started,
                     "cluster healthy") for c in contexts]


STEPS = (install, configure)
CLUSTER_STEPS = (tls_step.certificates, start_together)

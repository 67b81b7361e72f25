"""Guide section 3: host preparation (hostname, /etc/hosts, firewall, IP forwarding), and the
package managers' proxy where the site has one (upstream.http_proxy/https_proxy)."""

from __future__ import annotations

from provision.context import Context
from provision.steps import Change, ensure_absent, ensure_file, ensure_lines, unit_active

SECTION = "3 hosts"
SYSCTL = {"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.ip_forward": "1"}


def hostname(ctx: Context) -> Change:
    """The guide's order: `hostnamectl --static set-hostname`, then /etc/hostname. hostnamed
    returns early when /etc/hostname already holds the name (method_set_static_hostname in
    hostnamed.c, systemd 219 and 252) and the running name stays the old one, so the file is
    written second; the running name is checked after, and set directly where it still differs
    (a container without hostnamed, or a file written by an interrupted earlier run)."""
    name = ctx.spec.name
    changed = False
    if ctx.node.run("hostname").stdout.strip() != name:
        ctx.node.run(f"hostnamectl --static set-hostname {name}; [ \"$(hostname)\" = {name} ] || hostname {name}",
                     check=True)
        changed = True
    changed |= ensure_file(ctx.node, "/etc/hostname", f"{name}\n")
    return ctx.change("hostname", changed, name)


def hosts_file(ctx: Context) -> Change:
    lines = [f"{n.ip} {n.name}" for n in ctx.cfg.nodes]
    return ctx.change("/etc/hosts", ensure_lines(ctx.node, "/etc/hosts", lines), ", ".join(lines))


def firewall(ctx: Context) -> Change:
    stopped = []
    for service in ctx.platform.firewall_services:
        if unit_active(ctx.node, service) or ctx.node.run(f"systemctl is-enabled --quiet {service}").ok:
            ctx.node.run(f"systemctl disable --now {service}", check=True)
            stopped.append(service)
    if stopped:
        # The guide flushes what the firewall left behind; only then, so a rerun keeps the
        # rules Docker and Calico have added since.
        ctx.node.run("iptables -F", check=True)
        return ctx.change("firewall off", True, f"stopped {', '.join(stopped)}, iptables -F")
    return ctx.change("firewall off", False, "no firewall service running")


def ip_forwarding(ctx: Context) -> Change:
    changed = ensure_lines(ctx.node, "/etc/sysctl.conf", [f"{k}={v}" for k, v in SYSCTL.items()])
    live = {k: ctx.node.run(f"sysctl -n {k}").stdout.strip() for k in SYSCTL}
    if changed or live != SYSCTL:
        ctx.node.run("sysctl -p", check=True)
        changed = True
    return ctx.change("ip_forward, rp_filter", changed, " ".join(f"{k}={v}" for k, v in SYSCTL.items()))


APT_PROXY = "/etc/apt/apt.conf.d/80calicolab-proxy"
YUM_CONF = "/etc/yum.conf"


def render_apt_proxy(env: dict[str, str]) -> str:
    lines = [f'Acquire::{scheme}::Proxy "{env[f"{scheme}_proxy"]}";' for scheme in ("http", "https")
             if env.get(f"{scheme}_proxy")]
    return "// Written by calicolab from cluster.yaml upstream.http_proxy/https_proxy.\n" + "\n".join(lines) + "\n"


def package_proxy(ctx: Context) -> Change:
    """apt or yum through the site's proxy; without one, nothing of ours is left behind."""
    env = ctx.cfg.upstream.proxy_env(ctx.cfg.nodes)
    if ctx.platform.family == "debian":
        changed = ensure_file(ctx.node, APT_PROXY, render_apt_proxy(env)) if env else ensure_absent(ctx.node, APT_PROXY)
    elif env:
        # yum has one proxy for both schemes, in [main] (the only section of CentOS 7's yum.conf).
        url = env.get("https_proxy") or env["http_proxy"]
        current = ctx.node.read(YUM_CONF) or ""
        changed = f"proxy={url}" not in current.splitlines()
        if changed:
            ctx.node.run(f"sed -i '/^proxy=/d' {YUM_CONF}", check=True)
            ensure_lines(ctx.node, YUM_CONF, [f"proxy={url}"])
    else:
        changed = False
    return ctx.change("package manager proxy", changed, env.get("https_proxy") or env.get("http_proxy") or "none")


STEPS = (hostname, hosts_file, firewall, ip_forwarding, package_proxy)

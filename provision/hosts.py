"""Guide section 3: host preparation (hostname, /etc/hosts, firewall, IP forwarding)."""

from __future__ import annotations

from provision.context import Context
from provision.steps import Change, ensure_file, ensure_lines, unit_active

SECTION = "3 hosts"
SYSCTL = {"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.ip_forward": "1"}


def hostname(ctx: Context) -> Change:
    name = ctx.spec.name
    changed = ensure_file(ctx.node, "/etc/hostname", f"{name}\n")
    if ctx.node.run("hostname").stdout.strip() != name:
        # hostnamectl needs systemd-hostnamed; plain `hostname` does the same in a container.
        ctx.node.run(f"hostnamectl --static set-hostname {name} || hostname {name}", check=True)
        changed = True
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


STEPS = (hostname, hosts_file, firewall, ip_forwarding)

"""CentOS 7 installs: yum against the vault, upstream release archives with pinned checksums.

Platform.install calls install(node, component, version, source) with the source that
versions.yaml names for the VM providers (centos-extras, upstream, docker-ce). Every command
comes from a pure function so tests can check the exact sequences without a node.
"""

from __future__ import annotations

import shlex

from calicolab.core import versions
from calicolab.core.errors import UserError
from calicolab.core.remote import Node
from calicolab.stack import downloads
from provision.steps import ensure_file

VAULT = "http://vault.centos.org/7.9.2009"
BASE_REPO = "/etc/yum.repos.d/CentOS-Base.repo"
DOCKER_REPO = "/etc/yum.repos.d/docker-ce.repo"
ETCD_UNIT = "/etc/systemd/system/etcd.service"
ETCD_CONF = "/etc/etcd/etcd.conf"  # provision/etcd.py CONF; not imported: it imports this module (via platform)
YUM_TIMEOUT = 900

# ---- rendered files ---------------------------------------------------------------------

def render_vault_repo() -> str:
    """CentOS-Base.repo on the vault (the same text the box's kickstart writes)."""
    sections = [("base", "Base", "os"), ("updates", "Updates", "updates"), ("extras", "Extras", "extras")]
    parts = ["# CentOS 7.9.2009 is end of life: mirrorlist.centos.org is gone, "
             "the packages live on the vault.\n"]
    for i, (repo_id, title, path) in enumerate(sections):
        parts.append(("\n" if i else "") +
                     f"[{repo_id}]\nname=CentOS-7.9.2009 - {title}\n"
                     f"baseurl={VAULT}/{path}/$basearch/\nenabled=1\ngpgcheck=1\n"
                     "gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7\n")
    return "".join(parts)


def render_docker_repo() -> str:
    # $releasever is pinned to 7: the repo tree is per major release.
    return ("[docker-ce-stable]\nname=Docker CE Stable - $basearch\n"
            "baseurl=https://download.docker.com/linux/centos/7/$basearch/stable\n"
            "enabled=1\ngpgcheck=1\ngpgkey=https://download.docker.com/linux/centos/gpg\n")


def render_etcd_unit() -> str:
    """CentOS's etcd.service for the upstream binaries. Unlike CentOS's unit it passes no
    flags: etcd 3.4+ refuses to start when a flag shadows an ETCD_* variable of etcd.conf."""
    return ("[Unit]\nDescription=Etcd Server\nAfter=network.target\nAfter=network-online.target\n"
            "Wants=network-online.target\n\n"
            "[Service]\nType=notify\nWorkingDirectory=/var/lib/etcd/\n"
            "EnvironmentFile=-/etc/etcd/etcd.conf\nUser=etcd\nExecStart=/usr/bin/etcd\n"
            "Restart=on-failure\nLimitNOFILE=65536\n\n"
            "[Install]\nWantedBy=multi-user.target\n")


def etcd_yum_commands(version: str, enabled: bool = False) -> list[str]:
    """`enabled`: the member's unit is enabled now. The package's %post only applies the preset
    (disabled on CentOS), and the upstream unit's enable link would be left dangling."""
    return [
        *(["systemctl disable etcd"] if enabled else []),
        # Drop the upstream unit if an earlier run installed one: the package brings its own.
        f"rm -f {ETCD_UNIT} && systemctl daemon-reload",
        f"yum install -y etcd-{version}",
        *(["systemctl enable etcd"] if enabled else []),
    ]


def etcd_upstream_commands(version: str, download_base: str = "", proxy: dict[str, str] | None = None) -> list[str]:
    art = downloads.etcd_archive(version, download_base)
    if art.pin is None:
        pinned = ", ".join(sorted(downloads.ETCD_PINS))
        raise UserError(f"etcd {version} from upstream has no published sha256 pinned (pinned: {pinned}): pick a "
                        "pinned version, or pin it in calicolab/stack/downloads.py with where it was published")
    path = f"/tmp/etcd-v{version}-linux-amd64.tar.gz"
    unpacked = f"/tmp/etcd-v{version}-linux-amd64"
    return [
        downloads.fetch_and_verify(art.source, art.pin.sha256, path, proxy),
        f"rm -rf {unpacked} && tar -xzf {path} -C /tmp",
        # The yum package (if any) is removed here, between these two: remove_etcd_rpm.
        f"install -m 0755 {unpacked}/etcd {unpacked}/etcdctl /usr/bin/",
        f"rm -rf {unpacked} {path}",
        "getent group etcd >/dev/null || groupadd -r etcd",
        "getent passwd etcd >/dev/null || useradd -r -g etcd -d /var/lib/etcd -s /sbin/nologin "
        "-c 'etcd user' etcd",
        "install -d -m 0700 -o etcd -g etcd /var/lib/etcd && mkdir -p /etc/etcd",
    ]


def docker_yum_commands(version: str, installed: str | None = None) -> list[str]:
    pkgs = f"docker-ce-{version} docker-ce-cli-{version}"
    if installed and versions.parse(installed) > versions.parse(version):
        # yum install refuses to go back; containerd.io stays as it is.
        return [f"yum downgrade -y {pkgs}", "systemctl enable docker"]
    return [f"yum install -y {pkgs} containerd.io", "systemctl enable docker"]


def image_pull_command(image: str) -> str:
    return f"docker pull {shlex.quote(image)}"


# ---- steps on a node --------------------------------------------------------------------

def ensure_vault_repos(node: Node) -> bool:
    """Put yum on the vault; True when something changed. Call before every yum command."""
    changed = ensure_file(node, BASE_REPO, render_vault_repo())
    if changed:
        # Cached metadata still names the dead mirrors.
        _run(node, "yum clean all -q")
    return changed


def ensure_docker_repo(node: Node) -> bool:
    return ensure_file(node, DOCKER_REPO, render_docker_repo())


def install(node: Node, component: str, version: str, source: str, download_base: str = "",
            proxy: dict[str, str] | None = None) -> None:
    """Install component at version from source (versions.yaml's `vm` column)."""
    handlers = {("etcd", "centos-extras"): _etcd_yum, ("etcd", "upstream"): _etcd_upstream,
                ("docker", "docker-ce"): _docker_ce}
    handler = handlers.get((component, source))
    if handler is None:
        raise UserError(f"{node.name}: no CentOS installer for {component} from {source!r}: "
                        "check versions.yaml")
    if handler is _etcd_upstream:
        _etcd_upstream(node, version, download_base, proxy)
    else:
        handler(node, version)


def _etcd_yum(node: Node, version: str) -> None:
    ensure_vault_repos(node)
    _run_all(node, etcd_yum_commands(version, _unit_enabled(node)))


def _etcd_upstream(node: Node, version: str, download_base: str = "", proxy: dict[str, str] | None = None) -> None:
    commands = etcd_upstream_commands(version, download_base, proxy)   # refuses unpinned versions before any change
    ensure_vault_repos(node)                     # the node stays on the vault whatever runs next
    _run_all(node, commands[:2])                 # fetched and verified before the package goes
    enable = remove_etcd_rpm(node)
    _run_all(node, commands[2:])
    if ensure_file(node, ETCD_UNIT, render_etcd_unit()):
        _run(node, "systemctl daemon-reload")
    if enable:
        _run(node, "systemctl enable etcd")


def remove_etcd_rpm(node: Node) -> bool:
    """Remove CentOS's etcd package (it would put its own etcd back on the next yum update),
    keeping the member's configuration; True when its unit was enabled and must be again.

    `rpm -e etcd` (etcd-3.3.11-2.el7.centos, the Fedora/el7 spec) renames an edited
    `%config(noreplace)` /etc/etcd/etcd.conf to etcd.conf.rpmsave (an unedited one is deleted),
    its %preun `%systemd_preun etcd.service` disables and stops the unit, and the unit file it
    owns goes with it. The upgrader has already written the next version's etcd.conf (the
    guide's URLs, name, data dir, cluster and the v2 flag), so that file is put back as it was
    and the upstream unit is enabled if the package's was."""
    if not node.run("rpm -q etcd").ok:
        return False
    kept = node.read(ETCD_CONF)
    enabled = _unit_enabled(node)
    _run(node, "rpm -e etcd")
    if kept is not None:
        node.put(kept, ETCD_CONF)
        # rpm's copy of the same text: left behind it would read as a configuration to restore.
        _run(node, f"rm -f {ETCD_CONF}.rpmsave")
    return enabled


def _docker_ce(node: Node, version: str) -> None:
    ensure_vault_repos(node)    # container-selinux comes from the vault's extras
    ensure_docker_repo(node)
    have = _docker_version(node)
    _run_all(node, docker_yum_commands(version, have))


def _unit_enabled(node: Node) -> bool:
    return node.run("systemctl is-enabled --quiet etcd").ok


def _docker_version(node: Node) -> str | None:
    res = node.run("rpm -q --qf '%{VERSION}' docker-ce")
    return res.stdout.strip() if res.ok and res.stdout.strip()[:1].isdigit() else None


def _run_all(node: Node, commands: list[str]) -> None:
    for cmd in commands:
        _run(node, cmd)


def _run(node: Node, cmd: str) -> None:
    res = node.run(cmd, timeout=YUM_TIMEOUT)
    if not res.ok:
        lines = (res.stderr or res.stdout).strip().splitlines()
        raise UserError(f"{node.name}: `{cmd[:80]}` exited {res.rc}: {lines[-1] if lines else 'no output'}")

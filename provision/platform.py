"""What differs between OS families, behind one small interface.

The guide's sections stay in their modules; they ask the platform how to install a component
at a version, which firewall service the OS has, and how etcd's unit finds etcd.conf.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from calicolab.core import versions
from calicolab.core.errors import UserError
from calicolab.core.remote import Node
from provision import centos

DEBIAN_MIRROR = "http://deb.debian.org/debian"
ROLLING_SUITES = ("sid", "forky")


@dataclass(frozen=True)
class Platform:
    family: str                         # debian | centos
    firewall_services: tuple[str, ...]  # services the guide turns off
    etcd_dropin: str | None             # systemd drop-in that makes etcd read /etc/etcd/etcd.conf

    def installed_version(self, node: Node, component: str) -> str | None:
        probe = {"etcd": "etcd --version", "docker": "dockerd --version"}[component]
        res = node.run(probe)
        m = re.search(r"(\d+\.\d+\.\d+)", res.stdout) if res.ok else None
        return m.group(1) if m else None

    def install(self, node: Node, component: str, version: str, provider: str, download_base: str = "",
                proxy: dict[str, str] | None = None) -> None:
        source = versions.source(component, version, provider)
        if self.family == "debian":
            _apt_install(node, component, source)
        else:
            centos.install(node, component, version, source, download_base, proxy)
        seen = self.installed_version(node, component)
        if seen != version:
            raise UserError(f"{node.name}: installing {component} {version} from {source} gave "
                            f"{seen or 'nothing'}: check versions.yaml")


DEBIAN = Platform("debian", ("firewalld", "ufw"), etcd_dropin=(
    "[Service]\n# The guide's settings live in /etc/etcd/etcd.conf (as on CentOS).\n"
    "EnvironmentFile=-/etc/etcd/etcd.conf\n"))
CENTOS = Platform("centos", ("firewalld",), etcd_dropin=None)

DEBIAN_PACKAGES = {"etcd": "etcd-server etcd-client", "docker": "docker.io"}


def detect(node: Node) -> Platform:
    text = node.read("/etc/os-release") or ""
    ident = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    family = ident.get("ID", "").strip('"')
    like = ident.get("ID_LIKE", "").strip('"')
    if family == "debian" or "debian" in like:
        return DEBIAN
    if family in ("centos", "rhel") or "rhel" in like:
        return CENTOS
    raise UserError(f"{node.name} runs an OS this suite does not provision ({family or 'unknown'}): "
                    "use the lab image or a CentOS 7 box")


# A package from a newer suite may ship a sysusers.d line with `u!` (create the user with its
# password locked; systemd 257), which the lab's bookworm systemd-sysusers refuses, failing
# the package's postinst. Read as `u` (the account is then created without that lock; the
# daemon never logs in either way), the package configures and runs.
# systemd colours the message when it thinks it writes to a terminal (seen on the lab nodes).
SYSUSERS_MODIFIER = re.compile(r"^(?:\x1b\[[0-9;]*m)?(/usr/lib/sysusers\.d/[\w.+-]+\.conf):\d+: "
                               r"Unknown modifier 'u!'", re.M)


def _configure_with_older_sysusers(node: Node, res):
    # Each stream on its own: dpkg's messages come on stderr, after stdout's last line.
    found = SYSUSERS_MODIFIER.findall(res.stdout) + SYSUSERS_MODIFIER.findall(res.stderr)
    if not found:
        return res
    files = " ".join(sorted(set(found)))
    return node.run(f"sed -i 's/^u! /u /' {files} && DEBIAN_FRONTEND=noninteractive dpkg --configure -a",
                    timeout=300)


def _apt_install(node: Node, component: str, suite: str) -> None:
    """Install from the given Debian suite, pinned low so nothing else moves to that suite."""
    # pkg/suite picks that suite's version even when it is older than the installed one
    # (a downgrade, or a lane that starts below the baked default).
    packages = " ".join(f"{pkg}/{suite}" for pkg in DEBIAN_PACKAGES[component].split())
    # sid and forky publish Release files valid for a week only: a mirror or snapshot that serves
    # them later fails apt's date check (the signatures are still checked).
    options = "[check-valid-until=no] " if suite in ROLLING_SUITES else ""
    listing = f"deb {options}{DEBIAN_MIRROR} {suite} main\n"
    pin = f"Package: *\nPin: release n={suite}\nPin-Priority: 100\n"
    node.put(listing, f"/etc/apt/sources.list.d/calicolab-{suite}.list")
    node.put(pin, f"/etc/apt/preferences.d/calicolab-{suite}")
    res = node.run(
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && "
        f"apt-get install -y -q --allow-downgrades --no-install-recommends "
        f"-o Dpkg::Options::=--force-confold {packages}", timeout=900)
    if not res.ok:
        res = _configure_with_older_sysusers(node, res)
    if not res.ok:
        lines = (res.stderr + res.stdout).strip().splitlines()
        # apt's errors start with E:, among many warnings; the last line is often a warning.
        why = next((line for line in lines if line.startswith("E:")), lines[-1] if lines else f"exit {res.rc}")
        raise UserError(f"{node.name}: apt could not install {packages} from {suite}: {why}")

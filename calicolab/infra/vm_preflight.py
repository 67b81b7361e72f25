"""Checks before `vagrant up` on the VM providers, each failing with one actionable line.

    provider installed     VBoxManage works; or virsh, /dev/kvm and the vagrant-libvirt plugin
    subnet free            no host interface already holds an address on the cluster subnet
    VirtualBox allows it   /etc/vbox/networks.conf lists a range containing the subnet (6.1.28+)
    artifacts pinned       an upstream etcd has a pinned sha256 (else provisioning would refuse it)

Parsing is done by pure functions so tests can feed them text.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from calicolab.core import shell
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.infra import libvirt_host, vm_debian
from calicolab.stack import parsers

NETWORKS_CONF = Path("/etc/vbox/networks.conf")
KVM_DEVICE = Path("/dev/kvm")
# What VirtualBox 6.1.28+ allows for host-only networks when networks.conf is absent.
VBOX_DEFAULT_RANGES = (ipaddress.ip_network("192.168.56.0/21"),)
VBOX_RESTRICTS_FROM = (6, 1, 28)
# Host interfaces VirtualBox creates for the private network, and reuses on the next `up`: an
# address of ours on one of these is not a conflict. libvirt's bridges (virbrN) are told apart
# by name instead: only this run's own networks' bridges are ours (libvirt_host.own_bridges).
PROVIDER_INTERFACES = {"virtualbox": ("vboxnet",)}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_vbox_version(text: str) -> tuple[int, int, int] | None:
    """`VBoxManage --version` prints e.g. 7.0.14r161095 or 6.1.50_Ubuntur161033."""
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def parse_networks_conf(text: str) -> list[Network]:
    """Ranges of `* <net> [<net>...]` lines; other lines and bad entries are ignored, as
    VirtualBox does."""
    ranges: list[Network] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields or fields[0] != "*":
            continue
        for item in fields[1:]:
            try:
                ranges.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                continue
    return ranges


def vbox_allows(subnet: str, networks_conf: str | None) -> bool:
    """None means the file is absent: VirtualBox's default range only."""
    net = ipaddress.ip_network(subnet)
    ranges = VBOX_DEFAULT_RANGES if networks_conf is None else parse_networks_conf(networks_conf)
    return any(r.version == net.version and net.subnet_of(r) for r in ranges)


def conflicting_addresses(ip_json: str, subnet: str, provider: str,
                          own: frozenset[str] = frozenset()) -> list[parsers.HostAddress]:
    """Host addresses on the subnet, except on the provider's reusable interfaces and on the
    interfaces named in own (this run's)."""
    net = ipaddress.ip_network(subnet)
    reusable = PROVIDER_INTERFACES.get(provider, ())
    return [a for a in parsers.ip_json_addresses(ip_json)
            if a.network.overlaps(net) and not a.ifname.startswith(reusable) and a.ifname not in own]


def plugin_listed(plugin_list: str, name: str) -> bool:
    """`vagrant plugin list` lines look like `vagrant-libvirt (0.11.2, system)`."""
    return any(line.split(" ", 1)[0] == name for line in plugin_list.splitlines())


# ---- checks against this host -----------------------------------------------------------

def check_virtualbox() -> tuple[int, int, int]:
    if not shell.which_or_none("VBoxManage"):
        raise UserError("VirtualBox is not installed (no VBoxManage on PATH): install VirtualBox 6.1.28+ "
                        "or 7.x, or use --provider libvirt or docker")
    out = shell.run(["VBoxManage", "--version"], check=False, timeout=60)
    version = parse_vbox_version(out.stdout) if out.ok else None
    if version is None:
        detail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"`VBoxManage --version` does not work ({detail[0]}): repair the VirtualBox "
                        "installation (kernel modules: /sbin/vboxconfig)")
    return version


def check_libvirt(software_ok: bool = False) -> None:
    """software_ok: the Debian box, small enough to run under emulation (TCG) where KVM is absent."""
    if not shell.which_or_none("virsh"):
        raise UserError("libvirt is not installed (no virsh on PATH): apt-get install libvirt-daemon-system "
                        "libvirt-clients, or use --provider virtualbox or docker")
    if not KVM_DEVICE.exists() and not software_ok:
        raise UserError(f"{KVM_DEVICE} is missing: enable KVM (VT-x/AMD-V) on this runner; CentOS VMs without "
                        "KVM are too slow for the suite")
    out = shell.run(["vagrant", "plugin", "list"], check=False, timeout=120)
    if not plugin_listed(out.stdout, "vagrant-libvirt"):
        raise UserError("the vagrant-libvirt plugin is not installed: apt-get install vagrant-libvirt "
                        "(or `vagrant plugin install vagrant-libvirt`)")


def check_subnet_free(cfg: ClusterConfig) -> None:
    """The cluster subnet, and under libvirt the run's management subnet, held by no host
    interface but this run's own: libvirt refuses to start a network on a subnet another
    bridge holds, and Vagrant then fails with a backtrace."""
    out = shell.run(["ip", "-j", "addr"], check=False, timeout=30)
    if not out.ok:
        return  # no iproute2 JSON here: Vagrant will report a clash itself
    subnets = [("cluster subnet", cfg.subnet)]
    own: frozenset[str] = frozenset()
    if cfg.provider == "libvirt":
        subnets.append(("management subnet", libvirt_host.management_subnet(cfg)))
        own = frozenset(libvirt_host.own_bridges(cfg))
    for what, subnet in subnets:
        clash = conflicting_addresses(out.stdout, subnet, cfg.provider, own)
        if clash:
            first = clash[0]
            raise UserError(f"host interface {first.ifname} already has {first.address}/{first.network.prefixlen} "
                            f"on the {what} {subnet}: destroy what uses it (another run: invoke destroy with its "
                            "--prefix and --subnet) or choose another subnet (CALICOLAB_SUBNET)")


def check_networks_conf(cfg: ClusterConfig, version: tuple[int, int, int],
                        path: Path = NETWORKS_CONF) -> None:
    if version < VBOX_RESTRICTS_FROM:
        return  # older VirtualBox allows any host-only range
    try:
        text: str | None = path.read_text()
    except FileNotFoundError:
        text = None
    except OSError as err:
        raise UserError(f"{path} cannot be read ({err.strerror}): make it readable") from None
    if not vbox_allows(cfg.subnet, text):
        where = "is missing (default 192.168.56.0/21 only)" if text is None else "does not allow it"
        raise UserError(f"VirtualBox refuses host-only network {cfg.subnet}: {path} {where}; add the line "
                        f"`* {cfg.subnet}` to {path}")


def preflight(cfg: ClusterConfig) -> None:
    """Raise UserError with one line at the first problem; do nothing for the docker lab."""
    if cfg.provider == "virtualbox":
        version = check_virtualbox()
        check_subnet_free(cfg)
        check_networks_conf(cfg, version)
    elif cfg.provider == "libvirt":
        check_libvirt(software_ok=cfg.is_debian_vm)
        check_subnet_free(cfg)
        if cfg.is_debian_vm:
            vm_debian.check_tools()


def vm_lane_missing() -> str | None:
    """Why the Debian VM lane cannot run on this host (a tool missing), or None."""
    for tool, package in (("virsh", "libvirt-clients"), ("libvirtd", "libvirt-daemon-system"),
                          ("qemu-system-x86_64", "qemu-system-x86"), ("mmdebstrap", "mmdebstrap"),
                          ("vagrant", "vagrant")):
        if not shell.which_or_none(tool):
            return f"{tool} is not installed (run `invoke setup`: apt-get install {package})"
    out = shell.run(["vagrant", "plugin", "list"], check=False, timeout=120)
    if not plugin_listed(out.stdout, "vagrant-libvirt"):
        return "the vagrant-libvirt plugin is not installed (apt-get install vagrant-libvirt)"
    return None

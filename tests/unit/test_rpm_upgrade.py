"""Defect 7 of issue 22: upgrading a CentOS member from the guide's yum etcd 3.3.11 to an upstream
archive must keep the member's configuration and its enabled unit.

The node is a FakeNode that answers like CentOS 7 with etcd-3.3.11-2.el7.centos installed. Its
`rpm -e etcd` does what the package's erase does (the Fedora/el7 etcd.spec lineage marks
/etc/etcd/etcd.conf `%config(noreplace)` and calls `%systemd_preun etcd.service`; rpm's rule for
such a file on erase; systemd 219's macros.systemd, which expand `%systemd_preun`):
- /etc/etcd/etcd.conf is `%config(noreplace)`: edited, it is renamed etcd.conf.rpmsave; as
  shipped, it is deleted;
- %preun `%systemd_preun etcd.service` on erase: `systemctl --no-reload disable` and `stop`;
- the package's /usr/lib/systemd/system/etcd.service goes with the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from fakes import FakeNode

from calicolab.core import config
from calicolab.upgrade.upgrader import Upgrader
from provision import centos, platform

CONF = "/etc/etcd/etcd.conf"
PACKAGE_UNIT = "/usr/lib/systemd/system/etcd.service"
# The guide's node1 settings (section 4, step 2) that the member must keep; the loopback client URL
# is the guide's fix for `dial tcp 127.0.0.1:4001`.
GUIDE = {
    "ETCD_NAME": "node1",
    "ETCD_DATA_DIR": "/var/lib/etcd/default.etcd",
    "ETCD_LISTEN_PEER_URLS": "http://192.168.223.131:2380",
    "ETCD_LISTEN_CLIENT_URLS": "http://192.168.223.131:2379,http://127.0.0.1:2379",
    "ETCD_INITIAL_ADVERTISE_PEER_URLS": "http://192.168.223.131:2380",
    "ETCD_ADVERTISE_CLIENT_URLS": "http://192.168.223.131:2379",
}
GUIDE_CLUSTER = {"node1=http://192.168.223.131:2380", "node2=http://192.168.223.130:2380"}
# What the package ships (an unedited %config file is deleted on erase, not saved).
PACKAGE_CONF = 'ETCD_DATA_DIR="/var/lib/etcd/default.etcd"\nETCD_LISTEN_CLIENT_URLS="http://localhost:2379"\n'


def conf_values(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in (ln.split("=", 1) for ln in text.splitlines() if "=" in ln)}


@dataclass
class CentosEtcd:
    """The package and unit state of a CentOS 7 node with the guide's yum etcd."""

    node: FakeNode
    installed: bool = True
    enabled: bool = True
    active: bool = True
    version: str = "3.3.11"
    events: list[str] = field(default_factory=list)

    def rpm_q(self, _cmd: str) -> tuple[int, str]:
        return (0, "etcd-3.3.11-2.el7.centos.x86_64\n") if self.installed else (1, "package etcd is not installed\n")

    def rpm_e(self, _cmd: str) -> tuple[int, str]:
        if not self.installed:  # the old code's `if rpm -q etcd ...; then rpm -e etcd; fi`
            return 0, ""
        self.enabled = self.active = False      # %systemd_preun etcd.service: disable, stop
        self.node.files.pop(PACKAGE_UNIT, None)
        conf = self.node.files.pop(CONF, None)
        out = ""
        if conf is not None and conf != PACKAGE_CONF:
            self.node.files[CONF + ".rpmsave"] = conf
            out = f"warning: {CONF} saved as {CONF}.rpmsave\n"
        self.installed = False
        self.events.append("erased")
        return 0, out

    def is_enabled(self, _cmd: str) -> tuple[int, str]:
        return (0, "") if self.enabled else (1, "")

    def enable(self, _cmd: str) -> tuple[int, str]:
        if centos.ETCD_UNIT not in self.node.files and PACKAGE_UNIT not in self.node.files:
            return 1, "Failed to execute operation: No such file or directory\n"
        self.enabled = True
        self.events.append("enabled")
        return 0, ""

    def rm_rpmsave(self, _cmd: str) -> tuple[int, str]:
        self.node.files.pop(CONF + ".rpmsave", None)
        return 0, ""

    def binaries(self, cmd: str) -> tuple[int, str]:
        self.version = cmd.split("/tmp/etcd-v", 1)[1].split("-", 1)[0]
        return 0, ""

    def stop(self, _cmd: str) -> tuple[int, str]:
        self.active = False
        return 0, "1796542961.000000000\n"  # etcd_stop's `date +%s.%N` before the stop

    def is_active(self, _cmd: str) -> tuple[int, str]:
        return (0, "active\n") if self.active else (3, "inactive\n")

    def start(self, _cmd: str) -> tuple[int, str]:
        self.active = True
        return 0, ""


@pytest.fixture
def member() -> CentosEtcd:
    node = FakeNode()
    state = CentosEtcd(node)
    node.files[PACKAGE_UNIT] = "[Unit]\nDescription=Etcd Server\n"
    node.files[CONF] = PACKAGE_CONF
    node.rules.update({
        r"rpm -e etcd": state.rpm_e,
        r"^rpm -q etcd$": state.rpm_q,
        r"^systemctl is-enabled --quiet etcd$": state.is_enabled,
        r"^systemctl enable etcd$": state.enable,
        r"^rm -f /etc/etcd/etcd\.conf\.rpmsave$": state.rm_rpmsave,
        r"^install -m 0755 /tmp/etcd-v": state.binaries,
        r"^etcd --version$": lambda _c: (0, f"etcd Version: {state.version}\nGit SHA: 1\n"),
        r"^date \+%s\.%N; systemctl stop --no-block etcd$": state.stop,
        r"^systemctl is-active etcd$": state.is_active,
        r"^date \+%s\.%N$": (0, "1796542961.500000000\n"),
        r"^systemctl daemon-reload && systemctl start etcd$": state.start,
        r"^systemctl start etcd$": state.start,
        r"^systemctl daemon-reload$": (0, ""),
        r"^yum clean all -q$": (0, ""),
        r"^curl -fsSL --retry 3 -o /tmp/etcd-v": (0, ""),
        r"^rm -rf /tmp/etcd-v": (0, ""),
        r"^getent (group|passwd) etcd": (0, ""),
        r"^install -d -m 0700 -o etcd -g etcd /var/lib/etcd && mkdir -p /etc/etcd$": (0, ""),
        r"^rm -f /usr/sbin/policy-rc\.d$": (0, ""),
    })
    return state


def test_upgrader_hop_from_yum_etcd_keeps_the_members_configuration_and_enabled_unit(member, tmp_path):
    cfg = config.load({"provider": "virtualbox", "vm_os": "centos7", "etcd": "3.3.11", "docker": "20.10.21",
                       "run_dir": str(tmp_path)}, environ={})
    up = Upgrader(cfg, [member.node], say=lambda _line: None)
    up._platform = lambda _node: platform.CENTOS            # the node is CentOS 7
    up._etcd_member_gate = lambda _node, version: f"{version} gate"  # no etcd to curl here
    up._etcd_member(member.node, "3.4.23")

    assert member.events[0] == "erased" and member.installed is False  # the package really went
    assert member.version == "3.4.23" and member.active
    conf = member.node.files.get(CONF)
    assert conf is not None, "etcd.conf was lost (left as etcd.conf.rpmsave): etcd 3.4 starts on localhost"
    got = conf_values(conf)
    for key, want in GUIDE.items():
        assert got.get(key) == want, key
    assert set(got["ETCD_INITIAL_CLUSTER"].split(",")) == GUIDE_CLUSTER
    # etcd 3.4 serves no v2 API unless asked (etcd's CHANGELOG-3.4: --enable-v2 defaults to false);
    # Docker's cluster store and Calico 2.6 need it.
    assert got.get("ETCD_ENABLE_V2") == "true"
    assert member.enabled, "etcd.service was left disabled by the package's %systemd_preun"
    assert member.node.files[centos.ETCD_UNIT] == centos.render_etcd_unit()
    assert CONF + ".rpmsave" not in member.node.files
    # Enabled once the upstream unit exists, before the hop starts etcd.
    cmds = member.node.commands
    assert cmds.index("systemctl enable etcd") < cmds.index("systemctl daemon-reload && systemctl start etcd")


def test_package_removed_only_after_the_archive_is_verified(member):
    member.node.files[CONF] = "ETCD_NAME=\"node1\"\n"
    centos.install(member.node, "etcd", "3.4.23", "upstream")
    cmds = member.node.commands
    erase = cmds.index("rpm -e etcd")
    fetched = ("curl ", "rm -rf /tmp/etcd-v3.4.23-linux-amd64 &&")  # download + verify, unpack
    assert max(i for i, c in enumerate(cmds) if c.startswith(fetched)) < erase
    assert member.node.files[CONF] == "ETCD_NAME=\"node1\"\n"
    assert member.enabled


def test_a_disabled_member_stays_disabled(member):
    member.enabled = False
    centos.install(member.node, "etcd", "3.4.23", "upstream")
    assert "systemctl enable etcd" not in member.node.commands and not member.enabled


def test_back_to_yum_etcd_keeps_the_unit_enabled(member):
    """The package's %post applies the preset only (etcd is disabled by CentOS's presets), and
    the upstream unit's enable link would dangle once that unit is removed."""
    member.installed = False
    member.node.files.pop(PACKAGE_UNIT)
    member.node.files[centos.ETCD_UNIT] = centos.render_etcd_unit()

    def disable(_cmd: str) -> tuple[int, str]:
        member.enabled = False
        return 0, ""

    def yum_install(_cmd: str) -> tuple[int, str]:
        member.installed, member.enabled, member.version = True, False, "3.3.11"  # %systemd_post: preset
        member.node.files[PACKAGE_UNIT] = "[Unit]\nDescription=Etcd Server\n"
        return 0, "Complete!\n"

    def rm_unit(_cmd: str) -> tuple[int, str]:
        member.node.files.pop(centos.ETCD_UNIT, None)
        return 0, ""

    member.node.rules.update({r"^systemctl disable etcd$": disable, r"^yum install -y etcd-3\.3\.11$": yum_install,
                              r"^rm -f /etc/systemd/system/etcd\.service && systemctl daemon-reload$": rm_unit})
    centos.install(member.node, "etcd", "3.3.11", "centos-extras")
    assert member.installed and member.enabled
    cmds = member.node.commands
    assert cmds.index("systemctl disable etcd") < cmds.index("yum install -y etcd-3.3.11") \
        < cmds.index("systemctl enable etcd")

"""An upgrade installs each version from where the node's OS gets it (versions.yaml's column),
the same as provisioning: a Debian 12 VM (libvirt, vm_os debian12) from a Debian suite.

Found on the Debian VM lane's upgrade suite: the upgrader asked for the provider's column
("libvirt" = the CentOS VMs' "upstream"), so apt was told to install `etcd-server/upstream`
and failed with "The repository ... upstream Release does not have a Release file".
"""

from __future__ import annotations

import pytest
from fakes import FakeNode

from calicolab.core import config
from calicolab.upgrade.upgrader import Upgrader
from provision import platform


@pytest.mark.parametrize(("etcd", "suite"), [("3.4.23", "bookworm"), ("3.5.16", "trixie")])
def test_debian_vm_upgrade_installs_from_a_debian_suite(tmp_path, etcd, suite):
    # versions.yaml: etcd 3.4.23 is bookworm's and 3.5.16 trixie's on Debian nodes.
    cfg = config.load({"provider": "libvirt", "vm_os": "debian12", "etcd": "3.4.23", "docker": "20.10.24",
                       "run_dir": str(tmp_path)}, environ={})
    node = FakeNode()
    node.rules.update({
        r"apt-get install": (0, ""),
        r"^etcd --version$": (0, f"etcd Version: {etcd}\n"),
        r"^rm -f /usr/sbin/policy-rc\.d$": (0, ""),
    })
    up = Upgrader(cfg, [node], say=lambda _line: None)
    up._platform = lambda _node: platform.DEBIAN
    up._install(node, "etcd", etcd)

    install = next(c for c in node.commands if "apt-get install" in c)
    assert f"etcd-server/{suite}" in install and f"etcd-client/{suite}" in install, install
    assert f"/etc/apt/sources.list.d/calicolab-{suite}.list" in node.puts

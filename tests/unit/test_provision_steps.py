"""Provisioning steps report changes, and a second pass changes nothing."""

from fakes import FakeNode

from calicolab.core import config
from provision import hosts, platform
from provision.context import Context
from provision.steps import ensure_file, ensure_lines


def _ctx(node: FakeNode) -> Context:
    cfg = config.load(environ={})
    return Context(cfg, node, cfg.node(node.name), platform.DEBIAN, section=hosts.SECTION)


def test_ensure_file_writes_once():
    node = FakeNode()
    assert ensure_file(node, "/etc/x", "a\n") is True
    assert ensure_file(node, "/etc/x", "a\n") is False
    assert ensure_file(node, "/etc/x", "b\n") is True


def test_ensure_lines_keeps_existing_content():
    node = FakeNode()
    node.files["/etc/hosts"] = "127.0.0.1 localhost\n"
    assert ensure_lines(node, "/etc/hosts", ["192.168.223.131 node1"]) is True
    assert node.files["/etc/hosts"] == "127.0.0.1 localhost\n192.168.223.131 node1\n"
    assert ensure_lines(node, "/etc/hosts", ["192.168.223.131 node1"]) is False


def test_hosts_section_is_idempotent():
    live = {"net.ipv4.conf.all.rp_filter": "0", "net.ipv4.ip_forward": "0"}

    def sysctl_n(cmd):
        return 0, live[cmd.split()[-1]] + "\n"

    def sysctl_p(_cmd):
        live.update({"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.ip_forward": "1"})
        return 0, ""

    hostname = {"name": "localhost"}

    def set_hostname(cmd):
        hostname["name"] = cmd.split()[3]
        return 0, ""

    node = FakeNode(rules={r"^sysctl -n": sysctl_n, r"^sysctl -p": sysctl_p,
                           r"^hostname$": lambda _c: (0, hostname["name"] + "\n"),
                           r"hostnamectl": set_hostname, r"systemctl is-": lambda _c: (1, "")})
    node.files.update({"/etc/hosts": "127.0.0.1 localhost\n", "/etc/sysctl.conf": "# defaults\n"})
    ctx = _ctx(node)
    first = [step(ctx) for step in hosts.STEPS]
    assert [c.changed for c in first] == [True, True, False, True]
    assert "iptables -F" not in node.commands  # no firewall ran, nothing to flush
    second = [step(ctx) for step in hosts.STEPS]
    assert not any(c.changed for c in second), [c.line() for c in second if c.changed]


def test_firewall_step_stops_a_running_firewalld_and_flushes():
    node = FakeNode(rules={r"systemctl is-active --quiet firewalld": lambda _c: (0, ""),
                           r"systemctl is-": lambda _c: (1, ""),
                           r"^systemctl disable --now firewalld$": (0, ""), r"^iptables -F$": (0, "")})
    change = hosts.firewall(_ctx(node))
    assert change.changed and "firewalld" in change.detail
    assert node.commands.index("systemctl disable --now firewalld") < node.commands.index("iptables -F")


def test_platform_detection():
    node = FakeNode()
    node.files["/etc/os-release"] = 'ID=centos\nID_LIKE="rhel fedora"\nVERSION_ID="7"\n'
    assert platform.detect(node) is platform.CENTOS
    node.files["/etc/os-release"] = "ID=debian\nVERSION_ID=12\n"
    assert platform.detect(node) is platform.DEBIAN

"""Provisioning steps report changes, and a second pass changes nothing."""

import re

import pytest
from fakes import FakeNode

from calicolab.core import config
from calicolab.core.errors import UserError
from calicolab.stack import downloads
from provision import calico, docker, hosts, platform
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

    node = FakeNode(rules={r"^sysctl -n": sysctl_n, r"^sysctl -p": sysctl_p, r"systemctl is-": lambda _c: (1, "")})
    names = _Hostnamed(node, kernel="localhost")
    node.prefer(r"^hostname$", lambda _c: (0, names.kernel + "\n"))
    node.prefer(r"^hostnamectl", names.run)
    node.files.update({"/etc/hosts": "127.0.0.1 localhost\n", "/etc/sysctl.conf": "# defaults\n"})
    ctx = _ctx(node)
    first = [step(ctx) for step in hosts.STEPS]
    assert [c.changed for c in first] == [True, True, False, True, False]  # no proxy set: nothing
    assert "iptables -F" not in node.commands  # no firewall ran, nothing to flush
    second = [step(ctx) for step in hosts.STEPS]
    assert not any(c.changed for c in second), [c.line() for c in second if c.changed]


PROXY = {"CALICOLAB_HTTP_PROXY": "http://proxy.example.com:3128",
         "CALICOLAB_HTTPS_PROXY": "http://proxy.example.com:3128", "CALICOLAB_NO_PROXY": ".corp.example.com"}


def _proxied(node: FakeNode, plat=platform.DEBIAN, environ: dict | None = None) -> Context:
    cfg = config.load(environ=PROXY if environ is None else environ)
    return Context(cfg, node, cfg.node(node.name), plat, section=hosts.SECTION)


def test_proxy_env_always_lets_the_nodes_and_loopback_bypass_it():
    cfg = config.load(environ=PROXY)
    env = cfg.upstream.proxy_env(cfg.nodes)
    assert env == {"http_proxy": "http://proxy.example.com:3128", "https_proxy": "http://proxy.example.com:3128",
                   "no_proxy": "localhost,127.0.0.1,192.168.223.131,192.168.223.130,.corp.example.com"}
    assert config.load(environ={}).upstream.proxy_env(cfg.nodes) == {}


def test_a_proxy_that_is_not_a_url_is_refused_in_one_line():
    with pytest.raises(UserError, match=r"^http_proxy 'proxy:3128' must be an http\(s\) URL, e.g. "):
        config.load(environ={"CALICOLAB_HTTP_PROXY": "proxy:3128"})


def test_apt_goes_through_the_proxy_and_forgets_it_when_unset():
    node = FakeNode(rules={r"^rm -f /etc/apt/apt.conf.d/80calicolab-proxy$": (0, "")})
    assert hosts.package_proxy(_proxied(node)).changed
    assert node.files[hosts.APT_PROXY].splitlines()[1:] == [
        'Acquire::http::Proxy "http://proxy.example.com:3128";',
        'Acquire::https::Proxy "http://proxy.example.com:3128";']
    assert not hosts.package_proxy(_proxied(node)).changed
    assert hosts.package_proxy(_proxied(node, environ={})).changed  # unset: our file goes
    assert "rm -f /etc/apt/apt.conf.d/80calicolab-proxy" in node.commands


def test_yum_gets_one_proxy_line():
    node = FakeNode(rules={r"^sed -i '/\^proxy=/d' /etc/yum.conf$":
                           lambda _c: (node.files.update({"/etc/yum.conf": "[main]\ngpgcheck=1\n"}) or (0, ""))})
    node.files["/etc/yum.conf"] = "[main]\ngpgcheck=1\nproxy=http://old:8080\n"
    assert hosts.package_proxy(_proxied(node, platform.CENTOS)).changed
    assert node.files["/etc/yum.conf"] == "[main]\ngpgcheck=1\nproxy=http://proxy.example.com:3128\n"
    assert not hosts.package_proxy(_proxied(node, platform.CENTOS)).changed


def test_docker_pulls_through_the_proxy_with_the_nodes_bypassing_it():
    cfg = config.load(environ=PROXY)
    text = docker.render_proxy_dropin(cfg.upstream.proxy_env(cfg.nodes))
    assert text.splitlines()[1:] == ["[Service]", 'Environment="HTTP_PROXY=http://proxy.example.com:3128"',
                                     'Environment="HTTPS_PROXY=http://proxy.example.com:3128"',
                                     'Environment="NO_PROXY=localhost,127.0.0.1,192.168.223.131,192.168.223.130,'
                                     '.corp.example.com"']


def test_downloads_carry_the_proxy_for_curl_only():
    cmd = downloads.fetch_command("https://github.com/x", "/tmp/x", {"https_proxy": "http://p:3128", "no_proxy": "a,b"})
    assert cmd.startswith("env https_proxy=http://p:3128 no_proxy=a,b curl -fsSL ")
    assert downloads.fetch_command("https://github.com/x", "/tmp/x").startswith("curl -fsSL ")


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


def _etcd_settings(monkeypatch: pytest.MonkeyPatch, factor: str | None) -> dict[str, str]:
    from calicolab.core import deadlines
    from provision import etcd
    monkeypatch.setattr(deadlines, "_factor", 1.0)  # put back afterwards
    if factor is not None:
        deadlines.apply(float(factor))
    cfg = config.load({}, environ={})
    return dict(line.split("=", 1) for line in etcd.render_conf(cfg, cfg.node("node1")).splitlines())


def test_etcd_keeps_its_default_timers_on_the_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    got = _etcd_settings(monkeypatch, None)
    assert "ETCD_HEARTBEAT_INTERVAL" not in got and "ETCD_ELECTION_TIMEOUT" not in got
    assert got["ETCD_NAME"] == '"node1"'


def test_etcd_timers_scale_with_emulation(monkeypatch: pytest.MonkeyPatch) -> None:
    # etcd's defaults are 100 ms and 1000 ms (etcd docs, tuning); x5 under TCG.
    got = _etcd_settings(monkeypatch, "5")
    assert got["ETCD_HEARTBEAT_INTERVAL"] == '"500"' and got["ETCD_ELECTION_TIMEOUT"] == '"5000"'


def test_the_slowest_steps_are_named_with_their_node_and_a_cluster_step_once():
    from provision import run as provisioning
    from provision.steps import Change
    changes = [Change("node1", "6 calico", "calico/node image", True, seconds=80.1),
               Change("node2", "6 calico", "calico/node image", True, seconds=95.4),
               Change("node1", "4 etcd", "start etcd (all together)", True, seconds=12.0),
               Change("node2", "4 etcd", "start etcd (all together)", True, seconds=12.0),
               Change("node1", "3 hosts", "hostname", False, seconds=0.1),
               Change("node2", "3 hosts", "hostname", False)]
    assert provisioning.slowest(changes) == ("calico/node image 95.4 s (node2), calico/node image 80.1 s (node1), "
                                             "start etcd (all together) 12.0 s (node1)")


@pytest.mark.parametrize(("provider", "engine_allows", "probed", "flag"), [
    ("docker", True, True, "--privileged"),
    ("docker", False, True, "--cap-add=ALL"),  # a lab node short of CAP_SYS_RESOURCE
    ("libvirt", True, False, "--privileged"),  # a VM's root has every capability: no probe
])
def test_privileged_auto_probes_only_the_lab_nodes_engine(provider, engine_allows, probed, flag):
    cfg = config.load(environ={"CALICOLAB_PROVIDER": provider})
    node = FakeNode(rules={r"^docker run --rm --privileged": (0 if engine_allows else 1, ""),
                           r"^mkdir -p /var/log/calico": (0, ""), r"^systemctl daemon-reload": (0, "")})
    ctx = Context(cfg, node, cfg.node(node.name), platform.DEBIAN, section=calico.SECTION,
                  facts={"calico_source": "double"})
    change = calico.unit(ctx)
    assert any(c.startswith("docker run --rm --privileged") for c in node.commands) is probed, node.commands
    assert flag in node.files[calico.UNIT_FILE]
    assert change.detail == ("--privileged" if flag == "--privileged" else "capabilities instead of --privileged")


class _Hostnamed:
    """A node's names as systemd-hostnamed keeps them: `hostnamectl --static set-hostname` does
    nothing when /etc/hostname already holds the name (hostnamed.c method_set_static_hostname,
    systemd 219 and 252); otherwise it writes the file and, a static name ranking first, the
    kernel's name too. `hostname NAME` sets the kernel's name alone."""

    def __init__(self, node: FakeNode, kernel: str) -> None:
        self.node, self.kernel = node, kernel

    def run(self, cmd: str):
        """`a; b` runs both, `a || b` runs b only when a failed, as sh does."""
        rc, skip = 0, False
        for part, sep in re.findall(r"([^;|]+)(;|\|\||$)", cmd):
            if not skip:
                rc = self._one(part.split())
            skip = sep == "||" and rc == 0
        return rc, ""

    def _one(self, words: list[str]) -> int:
        if words[:3] == ["hostnamectl", "--static", "set-hostname"]:
            if self.node.files.get("/etc/hostname", "").strip() != words[3]:
                self.node.files["/etc/hostname"] = words[3] + "\n"
                self.kernel = words[3]
            return 0
        if words[:1] == ["hostname"] and len(words) == 2:
            self.kernel = words[1]
            return 0
        if words[:1] == ["["]:  # [ "$(hostname)" = NAME ]
            return 0 if self.kernel == words[-2] else 1
        raise AssertionError(f"unexpected command {words}")


@pytest.mark.parametrize("file_before", ["debian12\n", "node1\n"])  # a fresh box; an interrupted earlier run
def test_hostname_step_changes_the_running_name_not_only_the_file(file_before):
    node = FakeNode()
    node.files["/etc/hostname"] = file_before
    names = _Hostnamed(node, kernel="debian12")
    node.prefer(r"^hostname$", lambda _c: (0, names.kernel + "\n"))
    node.prefer(r"^hostnamectl", names.run)
    change = hosts.hostname(_ctx(node))
    assert (names.kernel, node.files["/etc/hostname"]) == ("node1", "node1\n"), node.commands
    assert change.changed
    assert not hosts.hostname(_ctx(node)).changed  # and a second pass changes nothing

"""CentOS 7 provisioning: the files it renders and the commands each step runs, on a
recording node (tests/fakes.py FakeNode, strict: each test gives the rules for the commands its
install must run, so an unexpected one fails it)."""

from __future__ import annotations

import configparser
import hashlib
import shutil
import subprocess

import pytest

from calicolab.core import config
from calicolab.core.errors import UserError
from calicolab.stack import downloads
from provision import centos, etcd, platform

# The guide's /etc/etcd/etcd.conf for node1 (section 4, step 2), copied verbatim.
GUIDE_ETCD_CONF = """\
ETCD_DATA_DIR="/var/lib/etcd/default.etcd"
ETCD_LISTEN_PEER_URLS="http://192.168.223.131:2380"
ETCD_LISTEN_CLIENT_URLS="http://192.168.223.131:2379"
ETCD_NAME="node1"
ETCD_INITIAL_ADVERTISE_PEER_URLS="http://192.168.223.131:2380"
ETCD_ADVERTISE_CLIENT_URLS="http://192.168.223.131:2379"
ETCD_INITIAL_CLUSTER="node2=http://192.168.223.130:2380,node1=http://192.168.223.131:2380"
"""


def vm_config(etcd_version: str = "3.3.11", docker: str = "20.10.21") -> config.ClusterConfig:
    return config.load({"provider": "virtualbox", "etcd": etcd_version, "docker": docker}, environ={})


def conf_values(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in (ln.split("=", 1) for ln in text.splitlines() if "=" in ln)}


# ---- rendered files -----------------------------------------------------------------------

def test_etcd_conf_for_a_centos_node_is_the_guides():
    cfg = vm_config()
    got = conf_values(etcd.render_conf(cfg, cfg.node("node1")))
    want = conf_values(GUIDE_ETCD_CONF)
    for key in want.keys() - {"ETCD_LISTEN_CLIENT_URLS", "ETCD_INITIAL_CLUSTER"}:
        assert got[key] == want[key], key
    # The guide's fix for `dial tcp 127.0.0.1:4001`: loopback added to the client URLs.
    assert got["ETCD_LISTEN_CLIENT_URLS"] == want["ETCD_LISTEN_CLIENT_URLS"] + ",http://127.0.0.1:2379"
    # Member order in ETCD_INITIAL_CLUSTER does not matter to etcd.
    assert set(got["ETCD_INITIAL_CLUSTER"].split(",")) == set(want["ETCD_INITIAL_CLUSTER"].split(","))
    assert "ETCD_ENABLE_V2" not in got    # 3.3.11 serves the v2 API by default


def test_etcd_conf_turns_on_v2_for_upstream_etcd_34_and_later():
    cfg = vm_config("3.5.16")
    assert conf_values(etcd.render_conf(cfg, cfg.node("node2")))["ETCD_ENABLE_V2"] == "true"


def test_vault_repo_file():
    repo = configparser.RawConfigParser()
    repo.read_string(centos.render_vault_repo())
    assert repo.sections() == ["base", "updates", "extras"]
    for section, path in zip(repo.sections(), ("os", "updates", "extras"), strict=True):
        assert repo[section]["baseurl"] == f"http://vault.centos.org/7.9.2009/{path}/$basearch/"
        assert repo[section]["gpgcheck"] == "1"
        assert "mirrorlist" not in repo[section]


def test_docker_ce_repo_file():
    repo = configparser.RawConfigParser()
    repo.read_string(centos.render_docker_repo())
    section = repo["docker-ce-stable"]
    assert section["baseurl"] == "https://download.docker.com/linux/centos/7/$basearch/stable"
    assert section["gpgcheck"] == "1"


def test_upstream_etcd_unit_reads_etcd_conf_as_centos_does():
    unit = configparser.RawConfigParser(strict=False)
    unit.optionxform = str
    unit.read_string(centos.render_etcd_unit())
    service = unit["Service"]
    assert service["EnvironmentFile"] == "-/etc/etcd/etcd.conf"
    assert service["User"] == "etcd"
    assert service["Type"] == "notify"
    # No flags: etcd 3.4+ refuses a flag that shadows an ETCD_* variable from etcd.conf.
    assert service["ExecStart"] == "/usr/bin/etcd"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


# ---- command sequences --------------------------------------------------------------------

# What a CentOS 7 node answers to each install's commands (yum's output shortened).
YUM_CLEAN = {r"^yum clean all -q$": (0, "")}
ETCD_YUM = {**YUM_CLEAN,
            r"^systemctl is-enabled --quiet etcd$": (1, ""),  # a fresh node: no etcd unit
            r"^rm -f /etc/systemd/system/etcd\.service && systemctl daemon-reload$": (0, ""),
            r"^yum install -y etcd-3\.3\.11$": (0, "Installed:\n  etcd.x86_64 0:3.3.11-2.el7.centos\nComplete!\n")}
UNPACKED = r"/tmp/etcd-v3\.5\.16-linux-amd64"  # etcd_upstream_commands' work folder, archive next to it
ETCD_UPSTREAM = {**YUM_CLEAN,
                 r"^rpm -q etcd$": (1, "package etcd is not installed\n"),  # a fresh node
                 rf"^curl -fsSL --retry 3 -o {UNPACKED}\.tar\.gz https://\S+ && \{{ "
                 rf"echo '[0-9a-f]{{64}}  {UNPACKED}\.tar\.gz' \| sha256sum -c --quiet - \|\| ": (0, ""),
                 rf"^rm -rf {UNPACKED} && tar -xzf {UNPACKED}\.tar\.gz -C /tmp$": (0, ""),
                 rf"^install -m 0755 {UNPACKED}/etcd {UNPACKED}/etcdctl /usr/bin/$": (0, ""),
                 rf"^rm -rf {UNPACKED} {UNPACKED}\.tar\.gz$": (0, ""),
                 r"^getent group etcd >/dev/null \|\| groupadd -r etcd$": (0, ""),
                 r"^getent passwd etcd >/dev/null \|\| useradd -r -g etcd ": (0, ""),
                 r"^install -d -m 0700 -o etcd -g etcd /var/lib/etcd && mkdir -p /etc/etcd$": (0, ""),
                 r"^systemctl daemon-reload$": (0, "")}
DOCKER_CE = {**YUM_CLEAN,
             # a fresh node: rpm says so on stdout and exits 1
             r"^rpm -q --qf '%\{VERSION\}' docker-ce$": (1, "package docker-ce is not installed\n"),
             r"^yum install -y docker-ce-20\.10\.21 docker-ce-cli-20\.10\.21 containerd\.io$": (0, "Complete!\n"),
             r"^yum downgrade -y docker-ce-20\.10\.21 docker-ce-cli-20\.10\.21$": (0, "Complete!\n"),
             r"^systemctl enable docker$": (0, "")}

def first_index(log, predicate) -> int:
    return next(i for i, entry in enumerate(log) if predicate(entry))


def assert_yum_after_vault_repo(node) -> None:
    repo_written = first_index(node.log, lambda e: e == ("put", centos.BASE_REPO))
    first_yum = first_index(node.log, lambda e: e[0] == "run" and "yum " in e[1])
    assert repo_written < first_yum


def test_etcd_from_centos_extras(fake_node):
    fake_node.rules.update(ETCD_YUM)
    centos.install(fake_node, "etcd", "3.3.11", "centos-extras")
    assert_yum_after_vault_repo(fake_node)
    assert fake_node.commands[-2:] == ["rm -f /etc/systemd/system/etcd.service && systemctl daemon-reload",
                                       "yum install -y etcd-3.3.11"]
    assert fake_node.commands[0] == "yum clean all -q"


def test_vault_repos_untouched_when_already_right(fake_node):
    fake_node.rules.update(YUM_CLEAN)
    fake_node.files[centos.BASE_REPO] = centos.render_vault_repo()
    assert centos.ensure_vault_repos(fake_node) is False
    assert not any(c.startswith("yum") for c in fake_node.commands)
    fake_node.files[centos.BASE_REPO] = "[base]\nmirrorlist=http://mirrorlist.centos.org/\n"
    assert centos.ensure_vault_repos(fake_node) is True
    assert fake_node.files[centos.BASE_REPO] == centos.render_vault_repo()


def test_etcd_from_upstream_with_pinned_checksum(fake_node):
    fake_node.rules.update(ETCD_UPSTREAM)
    centos.install(fake_node, "etcd", "3.5.16", "upstream")
    cmds = fake_node.commands
    url = "https://github.com/etcd-io/etcd/releases/download/v3.5.16/etcd-v3.5.16-linux-amd64.tar.gz"
    fetch = next(c for c in cmds if c.startswith("curl "))
    assert url in fetch and downloads.ETCD_PINS["3.5.16"].sha256 in fetch and "sha256sum -c" in fetch
    # Fetched and verified before the package (if any) is asked about and removed.
    order = [next(i for i, c in enumerate(cmds) if needle in c) for needle in
             ("curl ", "tar -xzf", "rpm -q etcd", "install -m 0755", "useradd -r -g etcd")]
    assert order == sorted(order)
    assert "rpm -e etcd" not in cmds and "systemctl enable etcd" not in cmds  # nothing to remove or re-enable
    assert "install -m 0755 /tmp/etcd-v3.5.16-linux-amd64/etcd /tmp/etcd-v3.5.16-linux-amd64/etcdctl " \
           "/usr/bin/" in cmds
    assert fake_node.files[centos.ETCD_UNIT] == centos.render_etcd_unit()
    assert cmds[-1] == "systemctl daemon-reload"
    assert not any(c.startswith("yum install") for c in cmds)


def test_etcd_from_an_artifact_server_mirroring_github(fake_node):
    fake_node.rules.update(ETCD_UPSTREAM)
    centos.install(fake_node, "etcd", "3.5.16", "upstream", "https://artifacts.example.com/github")
    fetch = next(c for c in fake_node.commands if c.startswith("curl "))
    assert "https://artifacts.example.com/github/etcd-io/etcd/releases/download/v3.5.16/" in fetch


@pytest.mark.parametrize("version", ["3.3.25", "3.4.22"])
def test_upstream_etcd_without_pinned_checksum_is_refused_before_any_change(fake_node, version):
    assert version not in downloads.ETCD_PINS
    with pytest.raises(UserError, match="no published sha256 pinned"):
        centos.install(fake_node, "etcd", version, "upstream")
    assert fake_node.log == []


def test_docker_ce_pinned_from_dockers_repo(fake_node):
    fake_node.rules.update(DOCKER_CE)
    centos.install(fake_node, "docker", "20.10.21", "docker-ce")
    assert_yum_after_vault_repo(fake_node)
    docker_repo = first_index(fake_node.log, lambda e: e == ("put", centos.DOCKER_REPO))
    install = first_index(fake_node.log, lambda e: e[0] == "run" and e[1].startswith("yum install"))
    assert docker_repo < install
    assert fake_node.commands[-2:] == [
        "yum install -y docker-ce-20.10.21 docker-ce-cli-20.10.21 containerd.io", "systemctl enable docker"]


def test_docker_ce_downgrade(fake_node):
    fake_node.rules.update(DOCKER_CE)
    fake_node.prefer(r"^rpm -q --qf '%\{VERSION\}' docker-ce$", (0, "20.10.24"))
    centos.install(fake_node, "docker", "20.10.21", "docker-ce")
    assert fake_node.commands[-2] == "yum downgrade -y docker-ce-20.10.21 docker-ce-cli-20.10.21"


def test_failed_yum_is_one_clear_line(fake_node):
    fake_node.rules.update(ETCD_YUM)
    fake_node.prefer(r"^yum install ", (1, "No package etcd-3.3.11 available.\nError: Nothing to do\n"))
    with pytest.raises(UserError) as err:
        centos.install(fake_node, "etcd", "3.3.11", "centos-extras")
    assert "node1" in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).endswith("Error: Nothing to do")  # yum's last line says why


def test_unknown_source_is_refused(fake_node):
    with pytest.raises(UserError, match="no CentOS installer"):
        centos.install(fake_node, "etcd", "3.4.23", "bookworm")


def test_platform_routes_centos_installs_here(fake_node):
    fake_node.rules.update({**ETCD_YUM, r"^etcd --version$": (0, "etcd Version: 3.3.11\nGit SHA: Not provided\n")})
    platform.CENTOS.install(fake_node, "etcd", "3.3.11", "virtualbox")
    assert "yum install -y etcd-3.3.11" in fake_node.commands


@pytest.mark.parametrize("tamper", [False, True], ids=["intact", "tampered"])
def test_fetch_and_verify_really_checks_the_sha256(tmp_path, tamper):
    """Run the generated shell for real against a local file:// download."""
    if not shutil.which("curl") or not shutil.which("sha256sum"):
        pytest.skip("curl or sha256sum is not installed")
    source = tmp_path / "artifact"
    source.write_bytes(b"etcd release bytes")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if tamper:
        source.write_bytes(b"something else")
    fetched = tmp_path / "fetched"
    res = subprocess.run(["sh", "-c", downloads.fetch_and_verify(source.as_uri(), digest, str(fetched))],
                         capture_output=True, text=True)
    assert (res.returncode == 0) is (not tamper), res.stderr
    assert fetched.exists() is (not tamper)  # a file that fails its check is not left behind

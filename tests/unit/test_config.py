"""The one cluster configuration: defaults, overrides and one-line errors for bad input."""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from calicolab.core import config, paths
from calicolab.core.errors import UserError


def test_defaults_are_the_guides_topology():
    cfg = config.load(environ={})
    assert [(n.name, n.ip) for n in cfg.nodes] == [("node1", "192.168.223.131"), ("node2", "192.168.223.130")]
    assert cfg.netmask == "255.255.255.0"
    assert cfg.etcd_endpoints == "http://192.168.223.131:2379,http://192.168.223.130:2379"
    assert cfg.initial_cluster == "node1=http://192.168.223.131:2380,node2=http://192.168.223.130:2380"


def test_environment_then_flags_override():
    cfg = config.load({"etcd": "3.5.16"}, environ={"CALICOLAB_ETCD": "3.3.25", "CALICOLAB_PREFIX": "lane2"})
    assert cfg.versions.etcd == "3.5.16"  # the flag wins over the environment
    assert cfg.prefix == "lane2"


@pytest.mark.parametrize("override,message", [
    ({"provider": "hyperv"}, "unknown provider 'hyperv'"),
    ({"subnet": "192.168.223.0/33"}, "malformed subnet"),
    ({"etcd": "3.4"}, "malformed etcd version '3.4'"),
    ({"etcd": "3.6.1"}, "etcd 3.6.1 refused: etcd 3.6 removed the v2 API"),
    ({"docker": "24.0.7"}, "docker 24.0.7 refused: Docker 23 removed cluster-store"),
    ({"calico": "v3.0.1"}, "calico v3.0.1 refused: Calico 3 dropped the Docker libnetwork driver"),
    ({"etcd": "3.4.99"}, "etcd 3.4.99 is not available for the docker provider"),
    ({"calico_source": "maybe"}, "unknown calico source"),
    ({"artifact_limit": "-1"}, "artifact_limit must be 0 or more, not -1"),
    ({"artifact_limit": "a dozen"}, "artifact_limit must be a whole number, not 'a dozen'"),
])
def test_bad_input_is_one_clear_line(override, message):
    with pytest.raises(UserError) as err:
        config.load(override, environ={})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_node_ip_is_refused(tmp_path):
    text = paths.CLUSTER_FILE.read_text().replace("192.168.223.130", "192.168.223.300")
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match="malformed IP '192.168.223.300' for node2"):
        config.load(path=path, environ={})


def test_node_outside_the_subnet_is_refused(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(paths.CLUSTER_FILE.read_text().replace("192.168.223.130", "10.0.0.5"))
    with pytest.raises(UserError, match="not a host address of 192.168.223.0/24"):
        config.load(path=path, environ={})


def test_effective_configuration_round_trips(tmp_path):
    cfg = config.load({"run_dir": str(tmp_path / "run")}, environ={})
    written = config.write_effective(cfg)
    data = json.loads(written.read_text())
    assert data["netmask"] == "255.255.255.0" and data["nodes"][0]["name"] == "node1"
    assert config.from_effective(written) == cfg


def test_unwritable_run_folder_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = config.load({"run_dir": str(blocker / "run")}, environ={})
    with pytest.raises(UserError, match="cannot be written"):
        config.write_effective(cfg)


def test_subnet_override_moves_the_nodes_host_parts():
    cfg = config.load({"subnet": "192.168.224.0/24"}, environ={})
    assert [(n.name, n.ip) for n in cfg.nodes] == [("node1", "192.168.224.131"), ("node2", "192.168.224.130")]
    assert cfg.etcd_endpoints.startswith("http://192.168.224.131:2379")


def test_subnet_too_small_for_the_nodes_is_refused():
    with pytest.raises(UserError, match="not a host address of 10.9.0.0/28"):
        config.load({"subnet": "10.9.0.0/28"}, environ={})


@pytest.mark.parametrize("current,target,path", [
    ("3.3.25", "3.5.16", ["3.4.23", "3.5.16"]),
    ("3.3.25", "3.4.23", ["3.4.23"]),
    ("3.4.23", "3.4.23", []),
])
def test_etcd_upgrade_path_passes_every_minor(current, target, path):
    from calicolab.core.versions import upgrade_path

    assert upgrade_path("etcd", current, target, "docker") == path


@pytest.mark.parametrize("current,target,message", [
    # across a minor, etcd's own rule is the reason (a member below the cluster version refuses to start)
    ("3.5.16", "3.3.25", "etcd forbids the downgrade once the cluster version moved to 3.5 .*cluster cannot be "
                         "downgraded.*--rollback"),
    ("3.5.30", "3.5.16", "older than the running 3.5.30: downgrades are not rehearsed"),
    ("3.3.25", "3.9.1", "etcd 3.9.1 is not available for the docker provider"),
])
def test_etcd_upgrade_path_refusals(current, target, message):
    from calicolab.core.versions import upgrade_path

    with pytest.raises(UserError, match=message):
        upgrade_path("etcd", current, target, "docker")


@pytest.mark.parametrize("key,value,message", [
    ("registry_mirror", "harbor.example.com", r"must be an http\(s\) URL"),
    ("download_base", "ftp://x", r"must be an http\(s\) URL"),
    ("calico_node_image", "calico/node:v2.6.1", "without a tag"),
    ("insecure_registry", "http://10.0.0.5:5000", "must be host:port"),
    ("strict_artifacts", "maybe", "must be true or false"),
])
def test_bad_upstream_settings_are_one_line(key, value, message):
    with pytest.raises(UserError, match=message):
        config.load({key: value}, environ={})


def test_upstream_settings_come_from_the_environment_too():
    cfg = config.load(environ={"CALICOLAB_REGISTRY_MIRROR": "https://harbor.example.com",
                               "CALICOLAB_STRICT_ARTIFACTS": "true", "CALICOLAB_LOCK_FILE": "/tmp/x.lock"})
    assert (cfg.upstream.registry_mirror, cfg.upstream.strict, str(cfg.lock_path)) == (
        "https://harbor.example.com", True, "/tmp/x.lock")


# ---- default versions per provider family (issue 22, defect 9) ------------------------------
# The guide's hosts (docs/guide.md, versions table): etcd 3.3.11 from CentOS extras (etcdctl with
# ETCDCTL_API=2) and Docker 20.10.21. The lab and the Debian VMs take what Debian bookworm offers:
# etcd-server 3.4.23 and docker.io 20.10.24 (docs/stack-facts.md, Debian's package versions).
GUIDE_VERSIONS = {"etcd": "3.3.11", "docker": "20.10.21"}
BOOKWORM_VERSIONS = {"etcd": "3.4.23", "docker": "20.10.24"}


@pytest.mark.parametrize("settings,want", [
    ({"provider": "virtualbox"}, GUIDE_VERSIONS),
    ({"provider": "libvirt", "vm_os": "centos7"}, GUIDE_VERSIONS),
    ({"provider": "libvirt", "vm_os": "debian12"}, BOOKWORM_VERSIONS),
    ({"provider": "docker"}, BOOKWORM_VERSIONS),
], ids=["virtualbox", "libvirt-centos7", "libvirt-debian12", "lab"])
def test_default_versions_follow_the_provider_family(settings, want):
    cfg = config.load(settings, environ={})
    assert {"etcd": cfg.versions.etcd, "docker": cfg.versions.docker} == want


def test_centos_vms_take_the_guides_etcd_from_centos_extras():
    from calicolab.core.versions import source

    cfg = config.load({"provider": "virtualbox"}, environ={})
    assert source("etcd", cfg.versions.etcd, cfg.install_target) == "centos-extras"
    assert source("docker", cfg.versions.docker, cfg.install_target) == "docker-ce"


def test_the_provider_from_the_environment_picks_the_column_too():
    cfg = config.load(environ={"CALICOLAB_PROVIDER": "libvirt"})
    assert cfg.versions.etcd == GUIDE_VERSIONS["etcd"]


@pytest.mark.parametrize("overrides,environ,want", [
    ({"etcd": "3.5.16"}, {}, {"etcd": "3.5.16", "docker": "20.10.21"}),
    ({}, {"CALICOLAB_DOCKER": "20.10.24"}, {"etcd": "3.3.11", "docker": "20.10.24"}),
    ({"docker": "20.10.5"}, {"CALICOLAB_DOCKER": "20.10.24"}, {"etcd": "3.3.11", "docker": "20.10.5"}),
])
def test_explicit_versions_win_over_the_family_default(overrides, environ, want):
    cfg = config.load({"provider": "virtualbox", **overrides}, environ=environ)
    assert {"etcd": cfg.versions.etcd, "docker": cfg.versions.docker} == want


def test_the_effective_configuration_carries_the_resolved_versions(tmp_path):
    """The Vagrantfile and every later stage read cluster.json (CALICOLAB_CONFIG), not cluster.yaml."""
    cfg = config.load({"provider": "virtualbox", "run_dir": str(tmp_path / "run")}, environ={})
    data = json.loads(config.write_effective(cfg).read_text())
    assert {k: data["versions"][k] for k in ("etcd", "docker")} == GUIDE_VERSIONS
    assert config.from_effective(tmp_path / "run" / "cluster.json").versions == cfg.versions


def test_one_version_for_every_provider_is_still_read(tmp_path):
    text = paths.CLUSTER_FILE.read_text()
    path = tmp_path / "cluster.yaml"
    path.write_text(text.replace("etcd: {lab: 3.4.23, vm: 3.3.11}", "etcd: 3.5.16"))
    assert "etcd: 3.5.16" in path.read_text()
    for provider in ("docker", "virtualbox"):
        assert config.load({"provider": provider}, path=path, environ={}).versions.etcd == "3.5.16"


def test_a_version_table_without_the_runs_column_is_one_line(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(paths.CLUSTER_FILE.read_text().replace("etcd: {lab: 3.4.23, vm: 3.3.11}", "etcd: {lab: 3.4.23}"))
    with pytest.raises(UserError) as err:
        config.load({"provider": "virtualbox"}, path=path, environ={})
    assert "versions.etcd names no version for the 'vm' column" in str(err.value) and "\n" not in str(err.value)


# ---- one table of settings (issue 25, build item 3) ---------------------------------------------
SHIPPED = yaml.safe_load(paths.CLUSTER_FILE.read_text())  # cluster.yaml as committed: the defaults users see


def _at(data, where):
    for part in where:
        data = data[part]
    return data


def _leaves(data, prefix=()):
    for key, value in data.items():
        if isinstance(value, dict) and prefix + (key,) not in {("versions", "etcd"), ("versions", "docker")}:
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,)


def test_every_setting_in_cluster_yaml_is_declared_once_with_its_default():
    """cluster.yaml (the file users edit) and the table agree: nothing undeclared, no drift."""
    declared = {s.path: s for s in config.SETTINGS.values() if not s.machine}
    in_file = {leaf for leaf in _leaves(SHIPPED) if leaf[0] != "nodes"}
    assert in_file == set(declared)
    for where, setting in declared.items():
        assert _at(SHIPPED, where) == setting.default, setting.key
    assert len({s.env for s in config.SETTINGS.values()}) == len(config.SETTINGS)


def test_the_dataclass_defaults_are_the_tables():
    table = {k: s.default for k, s in config.SETTINGS.items()}
    up, res = config.Upstream(), config.Resources()
    assert {k: getattr(up, path[1]) for k, s in config.SETTINGS.items() if (path := s.path)[:1] == ("upstream",)} == \
        {k: v for k, v in table.items() if config.SETTINGS[k].path[:1] == ("upstream",)}
    assert (res.cpus, res.memory) == (table["vm_cpus"], table["vm_memory"])
    fields = {f.name: f.default for f in dataclasses.fields(config.ClusterConfig)}
    for key in ("etcd_tls", "history_file", "vm_os", "time_scale", "budgets", "artifact_limit"):
        assert fields[key] == table[key], key


@pytest.mark.parametrize("line,attribute", [
    ("calico_source: auto ", "calico_source"),
    ("time_scale: auto ", "time_scale"),
    ("reports_dir: reports ", "reports_dir"),
])
def test_a_setting_left_out_of_the_file_takes_its_declared_default(tmp_path, line, attribute):
    text = paths.CLUSTER_FILE.read_text()
    kept = [row for row in text.splitlines() if not row.startswith(line)]
    assert len(kept) == len(text.splitlines()) - 1
    path = tmp_path / "cluster.yaml"
    path.write_text("\n".join(kept) + "\n")
    cfg = config.load(path=path, environ={})
    assert getattr(cfg, attribute) == SHIPPED[attribute]


def test_a_left_out_upstream_section_takes_the_declared_defaults(tmp_path):
    text = paths.CLUSTER_FILE.read_text()
    head, rest = text.split("upstream:", 1)
    tail = rest[rest.index("\nrun_dir:"):]
    path = tmp_path / "cluster.yaml"
    path.write_text(head + tail.lstrip("\n"))
    cfg = config.load(path=path, environ={})
    assert (cfg.upstream.calico_node_image, cfg.upstream.lock_file) == ("calico/node", "artifacts.lock")


def test_explain_names_each_value_and_its_source(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(paths.CLUSTER_FILE.read_text().replace("privileged: auto ", "privileged: false ")
                    .replace("lock_file: artifacts.lock", "lock_file: site.lock"))
    cfg, rows = config.explain({"vm_os": "debian12", "provider": "libvirt"}, path=path,
                               environ={"CALICOLAB_HTTP_PROXY": "http://proxy.example.com:3128"})
    seen = {e.setting.key: (e.value, e.source) for e in rows}
    assert set(seen) == set(config.SETTINGS)
    assert seen["privileged"] == ("false", "cluster.yaml")
    assert seen["lock_file"] == ("site.lock", "cluster.yaml")
    assert seen["http_proxy"] == ("http://proxy.example.com:3128", "CALICOLAB_HTTP_PROXY")
    assert seen["vm_os"] == ("debian12", "--os") and seen["provider"] == ("libvirt", "--provider")
    assert seen["prefix"] == ("calicolab", "default")
    assert seen["etcd"] == (BOOKWORM_VERSIONS["etcd"], "default")  # Debian VMs take the lab column
    assert cfg == config.load({"vm_os": "debian12", "provider": "libvirt"}, path=path,
                              environ={"CALICOLAB_HTTP_PROXY": "http://proxy.example.com:3128"})


def _running_cluster(tmp_path):
    from calicolab.core import state

    cfg = config.load({"run_dir": str(tmp_path / "run")}, environ={})
    config.write_effective(cfg)
    state.update(cfg, ssh={"node1": {"host": "127.0.0.1"}})
    return cfg


def test_a_running_cluster_refuses_what_may_not_change_and_takes_what_may(tmp_path):
    """`live` in the table is what running_config lets differ, and takes when given."""
    from calicolab.core.state import running_config

    _running_cluster(tmp_path)
    run = {"run_dir": str(tmp_path / "run")}
    with pytest.raises(UserError, match="runs with prefix calicolab, not other: use `invoke destroy` first"):
        running_config(config.load({**run, "prefix": "other"}, environ={}), {**run, "prefix": "other"}, {})
    asked = {**run, "reports_dir": str(tmp_path / "elsewhere")}
    got = running_config(config.load(asked, environ={}), asked, {})
    assert got.prefix == "calicolab" and got.reports_path == tmp_path / "elsewhere"
    assert {k for k, s in config.SETTINGS.items() if s.live and not s.machine} == {
        "run_dir", "reports_dir", "history_file", "budgets", "artifact_limit"}


def test_a_running_cluster_takes_live_settings_from_the_environment_but_keeps_its_own_otherwise(tmp_path):
    from calicolab.core.state import running_config

    _running_cluster(tmp_path)  # brought up with budgets.yaml and 12 artifacts
    run = {"run_dir": str(tmp_path / "run")}
    environ = {"CALICOLAB_BUDGETS": str(tmp_path / "strict.yaml"), "CALICOLAB_ARTIFACT_LIMIT": "3"}
    got = running_config(config.load(run, environ=environ), run, environ)
    assert (got.budgets_path, got.artifact_limit) == (tmp_path / "strict.yaml", 3)
    # Not given to this task: the running cluster's, not cluster.yaml's (a later `invoke verify`
    # of a cluster brought up with --reports-dir keeps writing there).
    elsewhere = config.load({**run, "reports_dir": str(tmp_path / "first")}, environ={})
    config.write_effective(elsewhere)
    assert running_config(config.load(run, environ={}), run, {}).reports_path == tmp_path / "first"


def test_plants_are_options_of_known_kinds_and_values():
    plants = config.parse_plants(["fault=bgp-drop:10", "history=lost-write", "probe=blackhole",
                                  "bgp-query=0.2"])
    assert (plants.fault, plants.history, plants.probe, plants.bgp_query) == (
        "bgp-drop:10", "lost-write", "blackhole", "0.2")
    assert plants.fault_seconds == 10.0
    assert plants.options() == ["--plant", "fault=bgp-drop:10", "--plant", "history=lost-write",
                                "--plant", "probe=blackhole", "--plant", "bgp-query=0.2"]
    assert config.parse_plants(plants.options()[1::2]) == plants  # what a child process is given back
    assert config.parse_plants(["fault=bgp-cease"]).fault_seconds == 0.0
    assert config.parse_plants(None) == config.Plants() and config.Plants().options() == []


@pytest.mark.parametrize("given,message", [
    (["colour=blue"], "KIND one of fault, history, probe, bgp-query"),
    (["lost-write"], "write KIND=VALUE"),
    (["fault=bgp-drop:0"], "--plant fault='bgp-drop:0' is not known: use fault=bgp-drop:SECONDS"),
    (["fault=bgp-drop"], "--plant fault='bgp-drop' is not known"),
    (["fault=bgp-cease:5"], "--plant fault='bgp-cease:5' is not known"),
    (["probe=drop-everything"], "--plant probe='drop-everything' is not known: use probe=blackhole"),
    (["history=lost"], "--plant history='lost' is not known: use history=lost-write"),
    (["bgp-query=often"], "--plant bgp-query='often' is not known"),
    (["probe=blackhole", "probe=blackhole", "fault=bgp-cease", "fault=bgp-drop:3"], "--plant fault given twice"),
])
def test_a_bad_plant_is_one_line(given, message):
    with pytest.raises(UserError) as err:
        config.parse_plants(given)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_plants_never_reach_the_run_folder(tmp_path):
    cfg = config.with_plants(config.load({"run_dir": str(tmp_path / "run")}, environ={}),
                             config.parse_plants(["probe=blackhole"]))
    written = json.loads(config.write_effective(cfg).read_text())
    assert "plants" not in written and "blackhole" not in json.dumps(written)
    assert config.from_effective(tmp_path / "run" / "cluster.json").plants == config.Plants()


def test_machine_settings_come_from_the_environment_only(tmp_path):
    assert config.machine_value("box_cache", {}) == ""
    assert config.machine_value("box_cache", {"CALICOLAB_BOX_CACHE": " /srv/boxes "}) == "/srv/boxes"
    assert config.machine_value("image_namespace", {}) == "calicolab"
    with pytest.raises(KeyError):
        config.machine_value("prefix", {})
    _, rows = config.explain(environ={"CALICOLAB_BOX_CACHE": "/srv/boxes"})
    seen = {e.setting.key: (e.value, e.source) for e in rows}
    assert seen["box_cache"] == ("/srv/boxes", "CALICOLAB_BOX_CACHE")
    assert seen["image_namespace"] == ("calicolab", "default")
    with pytest.raises(UserError, match="unknown setting 'box_cache'"):
        config.load({"box_cache": "/srv/boxes"}, environ={})


def test_the_image_namespace_default_is_the_one_paths_uses_unset():
    assert config.SETTINGS["image_namespace"].default == paths.DEFAULT_IMAGE_NAMESPACE


def test_reports_of_a_refusal_go_where_the_flag_or_variable_says(tmp_path):
    assert config.fallback_reports_dir(str(tmp_path / "a"), {"CALICOLAB_REPORTS_DIR": "b"}) == tmp_path / "a"
    assert config.fallback_reports_dir(None, {"CALICOLAB_REPORTS_DIR": str(tmp_path / "b")}) == tmp_path / "b"
    assert config.fallback_reports_dir(None, {}) == paths.ROOT / "reports"


# ---- the guest Vagrant is told instead of detecting it over SSH -------------------------------
VAGRANT_GUESTS = Path("/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/plugins/guests")


@pytest.mark.parametrize(("provider", "vm_os", "guest"), [
    ("docker", "centos7", "debian"),     # the lab's node image is Debian, whatever vm_os says
    ("libvirt", "debian12", "debian"),
    ("libvirt", "centos7", "centos"),
    ("virtualbox", "centos7", "centos"),
])
def test_the_vagrantfile_is_told_the_guest_each_box_runs(tmp_path, provider, vm_os, guest):
    cfg = config.load({"provider": provider, "vm_os": vm_os, "run_dir": str(tmp_path / "run")}, environ={})
    assert json.loads(config.write_effective(cfg).read_text())["guest"] == guest
    if VAGRANT_GUESTS.is_dir():  # a name Vagrant does not know would fail every `vagrant up`
        assert (VAGRANT_GUESTS / guest / "plugin.rb").is_file()
    assert 'config.vm.guest = cluster["guest"].to_sym' in (paths.ROOT / "Vagrantfile").read_text()

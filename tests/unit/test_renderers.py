"""Files provisioning writes, compared with the guide's text (docs/guide.md)."""

import json

from calicolab.core import config, paths
from provision import calico, docker, etcd

GUIDE_ETCD_NODE1 = """\
ETCD_DATA_DIR="/var/lib/etcd/default.etcd"
ETCD_LISTEN_PEER_URLS="http://192.168.223.131:2380"
ETCD_NAME="node1"
ETCD_INITIAL_ADVERTISE_PEER_URLS="http://192.168.223.131:2380"
ETCD_ADVERTISE_CLIENT_URLS="http://192.168.223.131:2379"
"""


def _cfg(**over):
    return config.load(over, environ={})


def _settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_etcd_conf_has_the_guides_lines_and_the_loopback_fix():
    cfg = _cfg()
    got = _settings(etcd.render_conf(cfg, cfg.node("node1")))
    for key, value in _settings(GUIDE_ETCD_NODE1).items():
        assert got[key] == value
    assert got["ETCD_LISTEN_CLIENT_URLS"] == '"http://192.168.223.131:2379,http://127.0.0.1:2379"'
    members = set(got["ETCD_INITIAL_CLUSTER"].strip('"').split(","))
    assert members == {"node2=http://192.168.223.130:2380", "node1=http://192.168.223.131:2380"}


def test_etcd_v2_flag_only_from_3_4():
    assert "ETCD_ENABLE_V2" not in etcd.render_conf(_cfg(etcd="3.3.25"), _cfg().node("node1"))
    for version in ("3.4.23", "3.5.16"):
        cfg = _cfg(etcd=version)
        assert 'ETCD_ENABLE_V2="true"' in etcd.render_conf(cfg, cfg.node("node2"))


def test_daemon_json_points_at_the_nodes_own_etcd():
    cfg = _cfg()
    assert json.loads(docker.render_daemon_json(cfg.node("node2"))) == {
        "cluster-store": "etcd://192.168.223.130:2379"}


def test_calico_env_matches_the_guide():
    cfg = _cfg()
    art = calico.CalicoArtifacts.for_config(cfg, "upstream")
    got = _settings(calico.render_env(cfg, cfg.node("node1"), art))
    assert got == {
        "ETCD_ENDPOINTS": '"http://192.168.223.131:2379,http://192.168.223.130:2379"',
        "ETCD_CA_FILE": '""', "ETCD_CERT_FILE": '""', "ETCD_KEY_FILE": '""',
        "CALICO_NODENAME": '"node1"', "CALICO_NO_DEFAULT_POOLS": '""', "CALICO_IP": '"192.168.223.131"',
        "CALICO_IP6": '""', "CALICO_AS": '""', "CALICO_LIBNETWORK_ENABLED": "true",
        "CALICO_NETWORKING_BACKEND": "bird",
    }


def test_calico_env_names_the_double_when_it_is_used():
    cfg = _cfg()
    art = calico.CalicoArtifacts.for_config(cfg, "double")
    # the image namespace is the checkout's own (CALICOLAB_IMAGE_NAMESPACE; calicolab by default)
    assert f'CALICO_DOUBLE_IMAGE="{paths.IMAGE_NAMESPACE}/calico-node-double:v2.6.1"' in calico.render_env(
        cfg, cfg.node("node1"), art)


def test_unit_is_the_guides_with_configurable_privilege():
    art = calico.CalicoArtifacts.for_config(_cfg(), "upstream")
    unit = calico.render_unit(art, use_privileged=True)
    for line in ("After=docker.service", "Requires=docker.service", "EnvironmentFile=/etc/calico/calico.env",
                 "ExecStartPre=-/usr/bin/docker rm -f calico-node", "ExecStop=-/usr/bin/docker stop calico-node",
                 "Restart=on-failure", "StartLimitBurst=3", "StartLimitInterval=60s",
                 "WantedBy=multi-user.target"):
        assert line in unit.splitlines()
    for part in ("--net=host --privileged", "-e NODENAME=${CALICO_NODENAME}", "-e IP=${CALICO_IP}",
                 "-e ETCD_ENDPOINTS=${ETCD_ENDPOINTS}", "-v /run/docker/plugins:/run/docker/plugins",
                 "-v /var/run/calico:/var/run/calico", "calico/node:v2.6.1"):
        assert part in unit
    capped = calico.render_unit(art, use_privileged=False)
    assert "--privileged" not in capped and "--cap-add=ALL --cap-drop=SYS_RESOURCE" in capped


def test_daemon_json_carries_the_registry_mirror_and_an_insecure_registry():
    cfg = _cfg()
    data = json.loads(docker.render_daemon_json(cfg.node("node1"), ["https://harbor.example.com"],
                                                insecure_registries=["172.17.0.1:5000"]))
    assert data["registry-mirrors"] == ["https://harbor.example.com"]
    assert data["insecure-registries"] == ["172.17.0.1:5000"]

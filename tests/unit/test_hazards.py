"""Which known hazards an upgrade path crosses, and the report's lines. Expected crossings come
from the upstream notes each hazard cites (3.4: v2 off by default; 3.5: auth WAL format and no
`etcdctl migrate`; 3.5.26: /v2/keys routing, etcd-io/etcd#21249; 3.6, Docker 23, Calico 3:
refused)."""

from __future__ import annotations

import pytest

from calicolab.core import versions
from calicolab.upgrade import hazards


def ids(component: str, current: str, path: list[str]) -> set[str]:
    return {h.id for h in hazards.crossed(component, current, path)}


@pytest.mark.parametrize("current,path,want", [
    ("3.3.25", ["3.4.23", "3.5.16"], {"etcd-3.4-v2-off", "etcd-3.5-auth-wal", "etcd-3.5-no-migrate"}),
    ("3.4.23", ["3.5.16"], {"etcd-3.5-auth-wal", "etcd-3.5-no-migrate"}),
    ("3.5.16", ["3.5.30"], set()),  # a patch upgrade inside 3.5 crosses nothing listed
    ("3.5.16", ["3.5.26"], {"etcd-3.5.26-v2-routing"}),  # lands on the release with the bug
    ("3.4.23", ["3.5.26"], {"etcd-3.5-auth-wal", "etcd-3.5-no-migrate", "etcd-3.5.26-v2-routing"}),
    ("3.5.30", ["3.6.0"], {"etcd-3.6-no-v2"}),
])
def test_etcd_paths(current, path, want):
    assert ids("etcd", current, path) == want


def test_docker_and_calico():
    assert ids("docker", "20.10.5", ["20.10.24"]) == set()
    assert ids("docker", "20.10.24", ["24.0.7"]) == {"docker-23-no-cluster-store"}
    assert ids("calico", "v2.6.1", ["v3.0.1"]) == {"calico-3-data-migration", "calico-2.6-bgp-collision"}


def test_every_calico_restart_below_3_4_crosses_the_bgp_collision():
    # Calico < 3.4 meshes both ways; projectcalico/node 1183be5 (PR #79, Calico 3.4) made the
    # node-to-node connections one-way. A restart on 2.6 (the same version again) crosses it too.
    assert "calico-2.6-bgp-collision" in ids("calico", "v2.6.1", ["v2.6.12"])
    assert "calico-2.6-bgp-collision" in ids("calico", "v2.6.1", ["v2.6.1"])
    assert "calico-2.6-bgp-collision" not in ids("calico", "v2.6.1", ["v3.4.0"])
    hazard = next(h for h in hazards.HAZARDS if h.id == "calico-2.6-bgp-collision")
    assert "1183be5" in hazard.source and "bgp_incoming_connection" in hazard.source and not hazard.refused


def test_every_hazard_has_a_source_and_refused_ones_match_the_refusal_rules():
    for h in hazards.HAZARDS:
        assert h.source and h.what, h.id
        assert not h.check or h.check in hazards.CHECKS, h.id
    refused = {(h.component, versions.parse(h.at)[:2]) for h in hazards.HAZARDS if h.refused}
    assert refused == {(r.component, r.refuses_from) for r in versions.RULES}


def test_report_lines_name_the_path_the_check_and_the_source():
    found, lines = hazards.report_lines("etcd", "3.3.25", "3.5.16", "docker")
    assert {h.id for h in found} == {"etcd-3.4-v2-off", "etcd-3.5-auth-wal", "etcd-3.5-no-migrate"}
    assert "via 3.4.23, 3.5.16" in lines[0]
    v2 = next(line for line in lines if "etcd-3.4-v2-off" in line)
    assert "[checked after the upgrade: v2-enabled]" in v2 and "upgrade_3_4.md" in v2
    assert any("[checked before the upgrade: auth-disabled]" in line for line in lines)


def test_report_lines_for_a_refused_target_name_it_as_refused():
    found, lines = hazards.report_lines("etcd", "3.5.16", "3.6.0", "docker")
    assert [h.id for h in found] == ["etcd-3.6-no-v2"]
    assert any(line.strip().startswith("[REFUSED] etcd-3.6-no-v2") for line in lines)
    assert hazards.report_lines("docker", "20.10.5", "20.10.24", "docker")[1][0].endswith("none known")


def test_a_restart_at_the_same_calico_version_names_the_collision_hazard():
    # The rolling restart rehearsal "upgrades" calico to the version it runs.
    found, lines = hazards.report_lines("calico", "v2.6.1", "v2.6.1", "docker")
    assert [h.id for h in found] == ["calico-2.6-bgp-collision"]
    assert "calico-2.6-bgp-collision" in lines[1]

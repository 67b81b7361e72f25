"""Which Calico a run tests (calicolab/stack/upstream.py): `auto` picks upstream only when every
upstream part answers and can be verified, else the double on the lab, with the reason; an
explicit choice that cannot complete is refused in preflight, one line."""

from __future__ import annotations

import pytest

from calicolab.core import config
from calicolab.core.errors import UserError
from calicolab.stack import downloads, upstream
from calicolab.stack.upstream import HttpSeen

HUB = {"docker-distribution-api-version": "registry/2.0", "www-authenticate": 'Bearer realm="..."'}


def cfg(tmp_path, **overrides) -> config.ClusterConfig:
    return config.load({"run_dir": str(tmp_path / "run"), **overrides}, environ={})


def probe(answers: dict[str, HttpSeen]):
    """Answers by the longest matching URL prefix; anything else: no HTTP answer (offline)."""
    def ask(url: str, _follow: bool) -> HttpSeen:
        for prefix in sorted(answers, key=len, reverse=True):
            if url.startswith(prefix):
                return answers[prefix]
        return HttpSeen(0, {}, "curl: (6) Could not resolve host")
    return ask


ONLINE = {"https://registry-1.docker.io/v2/": HttpSeen(401, HUB),
          "https://github.com/": HttpSeen(200, {})}


def lock(tmp_path) -> downloads.Lock:
    return downloads.Lock.load(tmp_path / "artifacts.lock")


def locked(tmp_path, node_image: str = "calico/node", busybox: str = "busybox") -> downloads.Lock:
    """A lock holding what an upstream run uses, named as provisioning names it (provision/calico.py:
    <calico_node_image>:<calico>, provision/workloads.py: <busybox_image>:latest)."""
    held = lock(tmp_path)
    held.record(downloads.calicoctl_binary("v1.6.1"), "a" * 64)
    held.record(downloads.image(f"{node_image}:v2.6.1"), "sha256:" + "b" * 64)
    held.record(downloads.image(f"{busybox}:latest"), "sha256:" + "c" * 64)
    return held


def test_offline_auto_on_the_lab_is_the_double_with_the_reason(tmp_path):
    d = upstream.decide(cfg(tmp_path), lock(tmp_path), probe({}))
    assert d.source == "double" and "registry https://registry-1.docker.io does not answer" in d.reason


def test_a_host_that_answers_but_is_no_registry_is_not_upstream(tmp_path):
    # The old check took curl's exit 0 for "reachable": a captive portal's 200 or a proxy's 503 passed.
    for seen in (HttpSeen(200, {"content-type": "text/html"}), HttpSeen(503, {})):
        d = upstream.decide(cfg(tmp_path), lock(tmp_path), probe({**ONLINE, "https://registry-1.docker.io/v2/": seen}))
        assert d.source == "double" and "not a Docker registry" in d.reason


def test_online_auto_on_the_lab_is_upstream_only_with_everything_locked(tmp_path):
    # auto takes nothing on trust: unlocked, it is the double, saying how to record the lock.
    d = upstream.decide(cfg(tmp_path), lock(tmp_path), probe(ONLINE))
    assert d.source == "double" and "calicoctl v1.6.1 is not locked yet" in d.reason
    assert "invoke lock --record" in d.reason
    half = lock(tmp_path)
    half.record(downloads.calicoctl_binary("v1.6.1"), "a" * 64)
    d = upstream.decide(cfg(tmp_path), half, probe(ONLINE))
    assert d.source == "double" and "image calico/node:v2.6.1 is not locked yet" in d.reason
    d = upstream.decide(cfg(tmp_path), locked(tmp_path), probe(ONLINE))
    assert d.source == "upstream" and "every artifact pinned or locked" in d.reason
    # An explicit upstream without strict mode still locks on first use.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    d = upstream.decide(cfg(tmp_path, calico_source="upstream"), lock(fresh), probe(ONLINE))
    assert d.source == "upstream" and "locked on first use" in d.reason


def test_a_registry_without_the_release_file_is_not_enough(tmp_path):
    answers = {**ONLINE, "https://github.com/": HttpSeen(404, {})}
    d = upstream.decide(cfg(tmp_path), locked(tmp_path), probe(answers))
    assert d.source == "double" and "calicoctl v1.6.1" in d.reason and "HTTP 404" in d.reason


def test_strict_mode_refuses_what_is_neither_pinned_nor_locked(tmp_path):
    strict = cfg(tmp_path, strict_artifacts="true", calico_source="upstream")
    with pytest.raises(UserError, match="calicoctl v1.6.1 is neither pinned nor locked"):
        upstream.decide(strict, lock(tmp_path), probe(ONLINE))
    half = lock(tmp_path)
    half.record(downloads.calicoctl_binary("v1.6.1"), "a" * 64)
    # Images too: an unlocked calico/node is refused here, not after the box build.
    with pytest.raises(UserError, match="image calico/node:v2.6.1 is neither pinned nor locked .*invoke lock --record"):
        upstream.decide(strict, half, probe(ONLINE))
    assert upstream.decide(strict, locked(tmp_path), probe(ONLINE)).source == "upstream"
    # auto under strict mode never downloads what is unlocked: the double, with the reason.
    d = upstream.decide(cfg(tmp_path, strict_artifacts="true"), half, probe(ONLINE))
    assert d.source == "double" and "image calico/node:v2.6.1 is neither pinned nor locked" in d.reason


def test_explicit_upstream_that_cannot_complete_is_refused_in_one_line(tmp_path):
    with pytest.raises(UserError) as err:
        upstream.decide(cfg(tmp_path, calico_source="upstream"), lock(tmp_path), probe({}))
    assert "cannot complete" in str(err.value) and "\n" not in str(err.value)


def test_the_mirror_settings_are_what_is_probed(tmp_path):
    mirrored = cfg(tmp_path, registry_mirror="https://harbor.example.com",
                   download_base="https://artifacts.example.com/github")
    answers = {"https://harbor.example.com/v2/": HttpSeen(200, {"docker-distribution-api-version": "registry/2.0"}),
               "https://artifacts.example.com/github/projectcalico/calicoctl/": HttpSeen(200, {})}
    assert upstream.decide(mirrored, locked(tmp_path), probe(answers)).source == "upstream"
    named = cfg(tmp_path, calico_node_image="harbor.example.com/calico/node",
                busybox_image="harbor.example.com/library/busybox", download_base="https://artifacts.example.com/github")
    assert upstream.registry_of(named.upstream.calico_node_image) == "https://harbor.example.com"
    (tmp_path / "named").mkdir()
    held = locked(tmp_path / "named", "harbor.example.com/calico/node", "harbor.example.com/library/busybox")
    assert upstream.decide(named, held, probe(answers)).source == "upstream"
    # Each image's registry is probed: a busybox elsewhere that does not answer is missing.
    split = cfg(tmp_path, calico_node_image="harbor.example.com/calico/node", busybox_image="quay.example.com/busybox",
                download_base="https://artifacts.example.com/github", calico_source="upstream")
    with pytest.raises(UserError, match="registry https://quay.example.com does not answer"):
        upstream.decide(split, held, probe(answers))


def test_centos_vms_have_no_double(tmp_path):
    vm = cfg(tmp_path, provider="libvirt", etcd="3.4.23", docker="20.10.21")
    with pytest.raises(UserError, match="a CentOS box has no Calico double"):
        upstream.decide(vm, lock(tmp_path), probe({}))
    with pytest.raises(UserError, match="runs where its image is baked in"):
        upstream.decide(cfg(tmp_path, provider="libvirt", etcd="3.4.23", docker="20.10.21", calico_source="double"),
                        lock(tmp_path), probe(ONLINE))


def test_the_debian_vm_box_carries_the_double(tmp_path):
    # The Debian 12 box side-loads the double's image as the lab image does: `double` is allowed,
    # and `auto` falls back to it offline instead of refusing.
    asked = cfg(tmp_path, provider="libvirt", vm_os="debian12", calico_source="double")
    assert upstream.decide(asked, lock(tmp_path), probe({})).source == "double"
    offline = upstream.decide(cfg(tmp_path, provider="libvirt", vm_os="debian12"), lock(tmp_path), probe({}))
    assert offline.source == "double" and "upstream cannot complete" in offline.reason
    # Debian VMs install etcd from Debian's archive (versions.yaml's lab column): no etcd download.
    assert [a.key for a, _ in upstream.upstream_files(asked)] == ["calicoctl v1.6.1"]


def test_a_vm_run_checks_every_file_it_downloads(tmp_path):
    vm = cfg(tmp_path, provider="libvirt", etcd="3.4.23", docker="20.10.21")
    assert [a.key for a, _ in upstream.upstream_files(vm)] == ["calicoctl v1.6.1", "etcd 3.4.23"]
    assert upstream.decide(vm, lock(tmp_path), probe(ONLINE)).source == "upstream"
    answers = {**ONLINE, "https://github.com/etcd-io/": HttpSeen(404, {})}
    with pytest.raises(UserError, match="etcd 3.4.23 at https://github.com/etcd-io/etcd/releases/download/v3.4.23/"):
        upstream.decide(vm, lock(tmp_path), probe(answers))


def test_the_probe_reads_the_status_and_the_headers_not_curls_exit_code(monkeypatch):
    from calicolab.core import shell

    text = ("HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n"
            "docker-distribution-api-version: registry/2.0\r\n\r\n\nhttp-status=401")
    monkeypatch.setattr(shell, "run", lambda *_a, **_k: shell.Outcome(("curl",), 0, text, ""))
    seen = upstream.http_probe("https://registry-1.docker.io/v2/")
    assert seen.status == 401 and seen.headers["docker-distribution-api-version"] == "registry/2.0"


def test_preflight_probes_go_through_the_nodes_proxy(monkeypatch, tmp_path):
    from calicolab.core import shell

    asked = []

    def run(argv, **_k):
        asked.append(list(argv))
        return shell.Outcome(tuple(argv), 0, "\nhttp-status=503", "")

    monkeypatch.setattr(shell, "run", run)
    proxied = cfg(tmp_path, https_proxy="http://proxy.example.com:3128", calico_source="auto")
    upstream.decide(proxied, lock(tmp_path))
    first = asked[0]
    assert first[first.index("--proxy") + 1] == "http://proxy.example.com:3128"
    assert "192.168.223.131" in first[first.index("--noproxy") + 1]
    asked.clear()
    upstream.decide(cfg(tmp_path, calico_source="auto"), lock(tmp_path))
    assert asked and "--proxy" not in asked[0]


def test_a_strict_vm_run_stops_in_preflight_on_an_unlocked_calicoctl_and_passes_once_locked(tmp_path):
    vm = cfg(tmp_path, provider="virtualbox", etcd="3.4.23", docker="20.10.21", strict_artifacts="true")
    with pytest.raises(UserError) as err:
        upstream.decide(vm, lock(tmp_path), probe(ONLINE))
    assert "calicoctl v1.6.1 is neither pinned nor locked" in str(err.value) and "\n" not in str(err.value)
    half = lock(tmp_path)
    half.record(downloads.calicoctl_binary("v1.6.1"), "a" * 64)
    with pytest.raises(UserError, match="image calico/node:v2.6.1 is neither pinned nor locked"):
        upstream.decide(vm, half, probe(ONLINE))  # the image, before the box build
    assert upstream.decide(vm, locked(tmp_path), probe(ONLINE)).source == "upstream"  # etcd 3.4.23 is pinned

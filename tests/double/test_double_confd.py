"""confd's poll: one read a second; the templates are read and rendered again only when etcd's
index moved, or every 5 s as real confd's -interval=5 (so a peer added is in bird.cfg at the
next poll, and a quiet node costs one read)."""

from __future__ import annotations

from calico_double.agent import confd
from calico_double.agent.config import Config

ENV = {"NODENAME": "node1", "IP": "192.168.223.131", "IP6": "", "CALICO_NETWORKING_BACKEND": "bird",
       "ETCD_ENDPOINTS": "http://192.168.223.131:2379"}
HOSTS = "/calico/bgp/v1/host"


def test_renders_when_the_index_moves_or_the_interval_passes(etcd, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(confd, "check", lambda _inputs: None)  # `bird -p` is in the image, not here
    monkeypatch.setattr(confd, "hup_bird", lambda: 0)
    cfg = Config(**{**vars(Config.from_env(ENV)), "bird_config_dir": tmp_path})
    etcd.put(f"{HOSTS}/node1/ip_addr_v4", "192.168.223.131")
    now = [100.0]
    poller = confd.Poller(etcd, cfg, clock=lambda: now[0])

    assert poller.step()  # the first poll renders
    assert "192.168.223.130" not in (tmp_path / "bird.cfg").read_text()
    now[0] += 1
    assert not poller.step()  # nothing changed, within the interval: one read, no render

    etcd.put(f"{HOSTS}/node2/ip_addr_v4", "192.168.223.130")  # a peer registers
    now[0] += 1
    assert poller.step()
    assert "192.168.223.130" in (tmp_path / "bird.cfg").read_text()

    now[0] += 4.9
    assert not poller.step()
    now[0] += 0.1  # 5 s since the last render: rendered whatever the index says
    assert poller.step()


def test_between_passes_it_watches_etcd_as_confd_watch_does(etcd, tmp_path, monkeypatch) -> None:
    """No read each second: one watch on /calico from the last pass's index, for at most the 5 s
    after which real confd renders anyway (-watch -interval=5)."""
    monkeypatch.setattr(confd, "check", lambda _inputs: None)
    monkeypatch.setattr(confd, "hup_bird", lambda: 0)
    cfg = Config(**{**vars(Config.from_env(ENV)), "bird_config_dir": tmp_path})
    etcd.put(f"{HOSTS}/node1/ip_addr_v4", "192.168.223.131")
    poller = confd.Poller(etcd, cfg)
    assert not poller.wait()  # no pass yet: nothing to watch from
    assert poller.step()
    assert not poller.wait() and etcd.watches == [("/calico", etcd.index, confd.FULL_RENDER_S)]
    etcd.put(f"{HOSTS}/node2/ip_addr_v4", "192.168.223.130")  # a peer registers
    assert poller.wait()  # woken by the change
    assert poller.step() and "192.168.223.130" in (tmp_path / "bird.cfg").read_text()


def test_waits_for_its_own_address(etcd, tmp_path) -> None:
    cfg = Config(**{**vars(Config.from_env(ENV)), "bird_config_dir": tmp_path})
    assert not confd.Poller(etcd, cfg).step()
    assert not (tmp_path / "bird.cfg").exists()

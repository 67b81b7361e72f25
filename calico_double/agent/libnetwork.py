"""The libnetwork service: Docker's `calico` and `calico-ipam` remote drivers.

As libnetwork-plugin v1.1.0 under runit: its own process, sockets in /run/docker/plugins
(a stale socket is replaced at start; a SIGKILLed plugin leaves its sockets behind).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from .config import Config
from .etcd import EtcdClient
from .ipam import Ipam
from .ipam_driver import IpamDriver
from .netdev import NetDev
from .network_driver import NetworkDriver
from .plugin_server import PluginServer

log = logging.getLogger("libnetwork")


def main() -> int:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s [%(levelname)s] libnetwork-plugin: %(message)s")
    cfg = Config.from_env(os.environ)
    etcd = EtcdClient(cfg.etcd_endpoints, cfg.etcd_ca_file, cfg.etcd_cert_file, cfg.etcd_key_file)
    mtu_text = os.environ.get("CALICO_LIBNETWORK_VETH_MTU", "").strip()
    network = NetworkDriver(etcd, cfg.nodename, NetDev(), int(mtu_text) if mtu_text else None)
    servers = [
        PluginServer(cfg.plugin_dir / "calico.sock", network.routes(), "calico"),
        PluginServer(cfg.plugin_dir / "calico-ipam.sock", IpamDriver(Ipam(etcd, cfg.nodename)).routes(),
                     "calico-ipam"),
    ]
    for server in servers:
        server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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
from .runsv import set_process_name

log = logging.getLogger("libnetwork")


def main() -> int:
    set_process_name("libnetwork-plugin")
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s [%(levelname)s] libnetwork-plugin: %(message)s")
    cfg = Config.from_env(os.environ)
    etcd = EtcdClient.for_config(cfg)
    mtu_text = os.environ.get("CALICO_LIBNETWORK_VETH_MTU", "").strip()
    # libnetwork-plugin v1.1.0 keys endpoints and IPAM affinity by HOSTNAME, not NODENAME.
    network = NetworkDriver(etcd, cfg.plugin_hostname, NetDev(), int(mtu_text) if mtu_text else None,
                            create_profiles=cfg.libnetwork_create_profiles)
    servers = [
        PluginServer(cfg.plugin_dir / "calico.sock", network.routes(), "calico"),
        PluginServer(cfg.plugin_dir / "calico-ipam.sock", IpamDriver(Ipam(etcd, cfg.plugin_hostname)).routes(),
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

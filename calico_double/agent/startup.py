"""calico/node 2.6.1's `startup`, as rc.local runs it before runit starts any service.

Order and wording follow projectcalico/calico@v2.6.1:calico_node/startup/startup.go (the
steps themselves are in registration.py): its `message`/`warning`/`fatal` helpers print
plain lines to stdout (`WARNING: `/`ERROR: ` prefixes), and logrus prints nothing below
ERROR unless CALICO_STARTUP_LOGLEVEL says so. Without WAIT_FOR_DATASTORE=true there is no
waiting: etcd unreachable means `ERROR: Unable to access datastore to query node
configuration`, `Terminating`, exit 1.
"""

from __future__ import annotations

import logging
import sys
from ipaddress import IPv4Address

from .config import Config
from .etcd import EtcdClient
from .netdev import NetDev
from .registration import StartupError, start_node

log = logging.getLogger("startup")


class _MessageFormat(logging.Formatter):
    """startup.go's message()/warning()/fatal(): plain, `WARNING: `, `ERROR: `."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"ERROR: {text}"
        if record.levelno >= logging.WARNING:
            return f"WARNING: {text}"
        return text


def setup_logging(stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(_MessageFormat())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def run(cfg: Config, etcd: EtcdClient, netdev: NetDev) -> IPv4Address | None:
    """The node's registration; the BGP router address (None in policy-only mode).

    Raises StartupError (its ERROR lines already printed) when startup.go would terminate."""
    log.info("Skipping datastore connection test")
    reg = start_node(cfg, etcd, netdev)
    return reg.ipv4.ip if reg.ipv4 is not None else None


__all__ = ["StartupError", "run", "setup_logging"]

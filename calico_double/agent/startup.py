"""calico/node 2.6.1's `startup`, as rc.local runs it before runit starts any service.

Order and wording follow projectcalico/calico@v2.6.1:calico_node/startup/startup.go (the
steps themselves are in registration.py): its `message`/`warning`/`fatal` helpers print
plain lines to stdout (`WARNING: `/`ERROR: ` prefixes), and logrus prints nothing below
ERROR unless CALICO_STARTUP_LOGLEVEL says so. Without WAIT_FOR_DATASTORE=true there is no
waiting: etcd unreachable means `ERROR: Unable to access datastore to query node
configuration`, `Terminating`, exit 1. With it, startup retries every second until etcd
answers (waitForConnection).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address

from .config import Config
from .etcd import EtcdClient, EtcdError, EtcdKeyNotFound, EtcdUnavailable
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


def wait_for_connection(etcd: EtcdClient, sleep: Callable[[float], None] = time.sleep) -> None:
    """startup.go waitForConnection: get node "foo" until etcd answers, once a second.

    Not found is an answer; only "unauthorized" ends startup. The retry line is logrus INFO,
    which startup does not print by default, so the wait itself is silent."""
    log.info("Checking datastore connection")
    while True:
        try:
            etcd.get("/calico/v1/host/foo/metadata")
        except EtcdKeyNotFound:
            pass
        except EtcdUnavailable as exc:
            log.debug("Hit error connecting to datastore - retry: %s", exc)
            sleep(1.0)
            continue
        except EtcdError as exc:
            if "HTTP 401" in str(exc):
                log.error("Connection to the datastore is unauthorized")
                raise StartupError("unauthorized") from None
        break
    log.info("Datastore connection verified")


def run(cfg: Config, etcd: EtcdClient, netdev: NetDev,
        sleep: Callable[[float], None] = time.sleep) -> IPv4Address | None:
    """The node's registration; the BGP router address (None in policy-only mode).

    Raises StartupError (its ERROR lines already printed) when startup.go would terminate."""
    if cfg.wait_for_datastore:
        wait_for_connection(etcd, sleep)
    else:
        log.info("Skipping datastore connection test")
    reg = start_node(cfg, etcd, netdev)
    return reg.ipv4.ip if reg.ipv4 is not None else None


__all__ = ["StartupError", "run", "setup_logging"]

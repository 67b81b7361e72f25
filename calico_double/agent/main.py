"""The image's entrypoint: calico/node 2.6.1's start_runit, rc.local and runsvdir in one.

projectcalico/calico@v2.6.1:calico_node/filesystem/sbin/start_runit runs /etc/rc.local
(`startup`, a one-time confd render, the service list, `Starting libnetwork service`,
`Calico node started successfully`), prints `Calico node failed to start` to stderr when
that fails, then execs `runsvdir -P`. So the startup line comes *before* any service runs
and is not readiness, and `docker logs` holds only this startup text: the services log to
/var/log/calico/<service>/current.
"""

from __future__ import annotations

import os
import sys

from .confd import render_once
from .config import Config, ConfigError
from .etcd import EtcdClient, EtcdError
from .netdev import NetDev
from .runsv import Service, Supervisor
from .startup import StartupError, run, setup_logging

PY = (sys.executable or "python3", "-m")


def services(cfg: Config) -> list[Service]:
    """What rc.local enables (felix always; bird, bird6, confd unless the backend is none)."""
    enabled = [Service("felix", (*PY, "calico_double.agent.felix"))]
    if cfg.backend == "bird":
        conf = cfg.bird_config_dir
        enabled += [
            Service("bird", ("bird", "-R", "-s", str(cfg.run_dir / "bird.ctl"), "-d", "-c",
                             str(conf / "bird.cfg")), timestamps=True),
            Service("bird6", ("bird6", "-R", "-s", str(cfg.run_dir / "bird6.ctl"), "-d", "-c",
                              str(conf / "bird6.cfg")), timestamps=True),
            Service("confd", (*PY, "calico_double.agent.confd")),
        ]
    if cfg.libnetwork_enabled:
        enabled.append(Service("libnetwork", (*PY, "calico_double.agent.libnetwork")))
    return enabled


def main() -> int:
    setup_logging()
    try:
        cfg = Config.from_env(os.environ)
    except ConfigError as exc:
        print(f"ERROR: {exc}\nTerminating", flush=True)
        print("Calico node failed to start", file=sys.stderr, flush=True)
        return 1
    try:
        etcd = EtcdClient.for_config(cfg)
        router_id = run(cfg, etcd, NetDev())
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.backend == "bird" and router_id is not None:
            # rc.local runs confd once so BIRD starts with a working configuration.
            render_once(etcd, cfg, router_id, reload=False)
        else:
            print("CALICO_NETWORKING_BACKEND is none - no BGP daemon running")
    except (StartupError, EtcdError) as exc:
        if isinstance(exc, EtcdError):  # an etcd error outside startup.go's own checks
            print(f"ERROR: Unable to set node resource configuration: {exc}")
        print("Terminating", flush=True)
        print("Calico node failed to start", file=sys.stderr, flush=True)
        return 1
    if cfg.libnetwork_enabled:
        print("Starting libnetwork service")
    print("Calico node started successfully", flush=True)
    return Supervisor(services(cfg), cfg.log_dir).run()

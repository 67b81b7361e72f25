"""The docker provider's node containers: run flags and the provider-specific settings
written into the effective configuration the Vagrantfile reads."""

from __future__ import annotations

import socket

from calicolab.core import privilege, shell
from calicolab.core.config import ClusterConfig


def node_run_args(use_privileged: bool) -> list[str]:
    # systemd as PID 1 (tmpfs /run, the host's cgroups) and Docker inside (its own
    # /var/lib/docker on tmpfs: overlay2 works there and nothing outlives the node).
    return privilege.flags(use_privileged) + [
        "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "--tmpfs", "/var/lib/docker:rw,exec,suid,dev",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--cgroupns=host",
        "--stop-signal=SIGRTMIN+3",  # systemd halts on this signal, not on SIGTERM
    ]


def privileged_works(image: str) -> bool:
    return shell.run(privilege.probe_command(image), check=False, timeout=60).ok


def provider_settings(cfg: ClusterConfig, images: dict[str, str]) -> dict[str, object]:
    if not cfg.is_lab:
        return {"boot_timeout": 600}
    # Probe only when asked to decide (auto): the probe costs a throw-away container.
    use_priv = privilege.resolve(cfg.privileged, cfg.privileged == "auto" and privileged_works(images["lab_node"]))
    return {"boot_timeout": 90, "node_run_args": node_run_args(use_priv),
            "node_privileged": use_priv, "ssh_ports": {n.name: free_port() for n in cfg.nodes}}


def free_port() -> int:
    """A port the kernel just handed out: parallel lanes each run their own `vagrant up`, and
    Vagrant's own collision fix-up only sees its own process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

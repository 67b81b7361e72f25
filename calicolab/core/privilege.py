"""How to give a container host-level powers where `--privileged` is refused.

Some hosts (this project's CI among them) lack CAP_SYS_RESOURCE, so `docker run --privileged`
fails with "unable to apply caps". Every capability except that one, no seccomp/AppArmor
profile and writable /proc/sys do what the lab needs, one level down as well.
"""

from __future__ import annotations

PRIVILEGED = ["--privileged"]
CAPABILITIES = ["--cap-add=ALL", "--cap-drop=SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
                "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined"]


def flags(use_privileged: bool) -> list[str]:
    return list(PRIVILEGED if use_privileged else CAPABILITIES)


def probe_command(image: str) -> list[str]:
    """A throw-away container that tells whether --privileged works on this engine."""
    return ["docker", "run", "--rm", "--privileged", "--net=none", "--entrypoint", "/bin/true", image]


def resolve(setting: str, probe_ok: bool) -> bool:
    """setting is true|false|auto; auto follows what the probe saw."""
    return {"true": True, "false": False}.get(setting, probe_ok)

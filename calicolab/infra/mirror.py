"""A local stand-in for Docker Hub and GitHub, so the upstream path (pull, download, verify,
install) runs for real on a machine that reaches neither: a real registry (Debian's
docker-registry, the reference distribution registry) and a plain HTTP file server on the host,
reachable from the lab nodes through Docker's default bridge. They serve what the project
builds: the double's image pushed as calico/node:<tag>, the busybox image, and the double's
calicoctl as the calicoctl release file. Which Calico ran is still read off the image
(calicolab/stack/upstream.py): the double, served as calico/node. Beside them a real HTTP
proxy (Debian's tinyproxy), for runs that send the nodes through a proxy (upstream.http_proxy):
its log shows what went through it.

    invoke mirror            start it; prints the CALICOLAB_* settings that point a run at it
    invoke mirror.stop       (also done by `invoke destroy` of the same run folder)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from calicolab.core import shell
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import UserError
from calicolab.core.paths import IMAGE_NAMESPACE, ROOT
from calicolab.core.polling import Timeout, wait_for
from calicolab.infra import lab
from calicolab.stack import parsers

REGISTRY = "docker-registry"
PROXY = "tinyproxy"
START_DEADLINE = 30


@dataclass(frozen=True)
class Mirror:
    host_ip: str  # where the nodes reach the host (the default bridge's gateway)
    registry_port: int
    files_port: int
    registry_pid: int
    files_pid: int
    proxy_port: int
    proxy_pid: int

    @property
    def pids(self) -> tuple[int, ...]:
        return (self.registry_pid, self.files_pid, self.proxy_pid)

    def proxy_settings(self) -> dict[str, str]:
        """The CALICOLAB_* variables that send the nodes through this mirror's proxy."""
        url = f"http://{self.host_ip}:{self.proxy_port}"
        return {"CALICOLAB_HTTP_PROXY": url, "CALICOLAB_HTTPS_PROXY": url}

    @property
    def registry(self) -> str:
        return f"{self.host_ip}:{self.registry_port}"

    def settings(self) -> dict[str, str]:
        """The CALICOLAB_* variables that point a run at this mirror."""
        return {"CALICOLAB_CALICO_NODE_IMAGE": f"{self.registry}/calico/node",
                "CALICOLAB_BUSYBOX_IMAGE": f"{self.registry}/library/busybox",
                "CALICOLAB_INSECURE_REGISTRY": self.registry,
                "CALICOLAB_DOWNLOAD_BASE": f"http://{self.host_ip}:{self.files_port}"}


def folder(cfg: ClusterConfig) -> Path:
    return cfg.run_path / "mirror"


def files_root(cfg: ClusterConfig) -> Path:
    return folder(cfg) / "files"


def calicoctl_file(cfg: ClusterConfig) -> Path:
    """Where the served calicoctl lies (GitHub's release path under the download base)."""
    tag = cfg.versions.calicoctl
    return files_root(cfg) / "projectcalico" / "calicoctl" / "releases" / "download" / tag / "calicoctl"


def read(cfg: ClusterConfig) -> Mirror | None:
    try:
        return Mirror(**json.loads((folder(cfg) / "mirror.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None



def running(cfg: ClusterConfig) -> Mirror | None:
    found = read(cfg)
    return found if found and all(shell.alive(pid) for pid in found.pids) else None


def proxy_log(cfg: ClusterConfig) -> Path:
    return folder(cfg) / "proxy.log"


def proxy_clients() -> list[str]:
    """Who may use the proxy: the nodes (Docker's default bridge) and this host, which reaches
    the bridge's address from its own addresses."""
    out = shell.run(["docker", "network", "inspect", "bridge", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}"],
                    check=False, timeout=30)
    own = shell.run(["ip", "-j", "addr", "show"], check=False, timeout=30)
    mine = [a.address for a in parsers.ip_json_addresses(own.stdout if own.ok else "[]") if ":" not in a.address]
    return list(dict.fromkeys(["127.0.0.1", out.stdout.strip() or "172.16.0.0/12", *mine]))


def render_proxy_conf(port: int, log: Path, allowed: list[str]) -> str:
    """tinyproxy in the foreground, logging each request, open to the host and the nodes only."""
    lines = [f"Port {port}", "Timeout 120", f'LogFile "{log}"', "LogLevel Info", "MaxClients 64",
             *(f"Allow {a}" for a in allowed), "ViaProxyName \"calicolab-mirror\""]
    return "\n".join(lines) + "\n"


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge, where the nodes' eth0 (the NAT side) is."""
    out = shell.run(["docker", "network", "inspect", "bridge", "-f",
                     "{{range .IPAM.Config}}{{.Gateway}}{{end}} {{index .Options \"com.docker.network.bridge.name\"}}"],
                    check=False, timeout=30)
    gateway, _, bridge = out.stdout.strip().rpartition(" ")
    if gateway:
        return gateway
    # Older engines leave the gateway out of IPAM: it is the bridge interface's own address.
    addrs = shell.run(["ip", "-j", "addr", "show", bridge or "docker0"], check=False, timeout=30)
    found = parsers.ip_json_addresses(addrs.stdout if addrs.ok else "[]")
    if not found:
        raise UserError("Docker's default bridge has no address on this host: is the engine running? `invoke setup`")
    return found[0].address


def start(cfg: ClusterConfig, say: Callable[[str], None] = print) -> Mirror:
    if not cfg.is_lab:
        raise UserError("the local mirror serves the lab (provider docker); VM runs use upstream or your mirrors")
    up = running(cfg)
    if up:
        say(f"mirror already running: registry {up.registry}, files http://{up.host_ip}:{up.files_port}")
        return up
    shell.require(REGISTRY, "run `invoke setup` (apt-get install docker-registry)")
    shell.require(PROXY, "run `invoke setup` (apt-get install tinyproxy)")
    host_ip = bridge_gateway()
    base = folder(cfg)
    shutil.rmtree(base, ignore_errors=True)
    (base / "registry").mkdir(parents=True)
    files_root(cfg).mkdir(parents=True)
    reg_port, files_port, proxy_port = lab.free_port(), lab.free_port(), lab.free_port()
    config = base / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: "
                      f"{base / 'registry'}\n  delete:\n    enabled: true\nhttp:\n  addr: 0.0.0.0:{reg_port}\n")
    with (base / "registry.log").open("w") as log:
        registry = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    with (base / "files.log").open("w") as log:
        files = subprocess.Popen([sys.executable, "-m", "http.server", str(files_port), "--bind", "0.0.0.0",
                                  "--directory", str(files_root(cfg))], stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    proxy_conf = base / "tinyproxy.conf"
    proxy_conf.write_text(render_proxy_conf(proxy_port, proxy_log(cfg), proxy_clients()))
    with (base / "proxy.out").open("w") as log:
        proxy = subprocess.Popen([PROXY, "-d", "-c", str(proxy_conf)], stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    mirror = Mirror(host_ip, reg_port, files_port, registry.pid, files.pid, proxy_port, proxy.pid)
    (base / "mirror.json").write_text(json.dumps(asdict(mirror), indent=2) + "\n")
    try:
        for url in (f"http://127.0.0.1:{reg_port}/v2/", f"http://127.0.0.1:{files_port}/"):
            wait_for(lambda u=url: shell.run(["curl", "-sf", "-o", "/dev/null", u], check=False).ok, bool,
                     f"mirror {url}", timeout=START_DEADLINE)
        # Through the proxy as the nodes will reach it (the bridge's address), so a refused client shows here.
        via = ["curl", "-sf", "-o", "/dev/null", "--proxy", f"http://{host_ip}:{proxy_port}",
               f"http://{host_ip}:{files_port}/"]
        wait_for(lambda: shell.run(via, check=False).ok, bool, "mirror proxy", timeout=START_DEADLINE)
    except Timeout:
        stop(cfg, say=lambda _m: None)
        raise UserError(f"the local mirror did not answer within {START_DEADLINE} s: see {base}/*.log") from None
    publish(cfg, mirror, say)
    say(f"mirror: registry {mirror.registry}, files http://{host_ip}:{files_port}, proxy "
        f"http://{host_ip}:{proxy_port} (run folder {cfg.run_path})")
    return mirror


EMBEDDED_MARK = "# ---- the calicoctl double script, embedded ----"


def self_contained_calicoctl() -> str:
    """The double's calicoctl as one file, served as the release file: provisioning installs only
    the file it downloads, so the wrapper carries its script after a marker line it never runs
    past (every path ends in exec or exit) and extracts it when it finds none beside it."""
    wrapper = (ROOT / "calico_double" / "calicoctl.sh").read_text()
    script = (ROOT / "calico_double" / "calicoctl").read_text()
    return f"{wrapper.rstrip()}\nexit 127\n{EMBEDDED_MARK}\n{script}"


def publish(cfg: ClusterConfig, mirror: Mirror, say: Callable[[str], None]) -> None:
    """Push the images (the host reaches the registry as localhost, which Docker allows over
    plain http) and lay out the calicoctl release file."""
    pushes = {f"{IMAGE_NAMESPACE}/calico-node-double:{cfg.versions.calico}": f"calico/node:{cfg.versions.calico}",
              f"{IMAGE_NAMESPACE}/busybox:debian": "library/busybox:latest"}
    for local, served in pushes.items():
        target = f"localhost:{mirror.registry_port}/{served}"
        shell.run(["docker", "tag", local, target], timeout=60)
        shell.run(["docker", "push", target], timeout=600)
        shell.run(["docker", "rmi", target], check=False, timeout=60)  # the local copy keeps its own name
        say(f"    pushed {local} as {mirror.registry}/{served}")
    served = calicoctl_file(cfg)
    served.parent.mkdir(parents=True, exist_ok=True)
    served.write_text(self_contained_calicoctl())
    served.chmod(0o755)
    say(f"    serving the double's calicoctl as {served.relative_to(files_root(cfg))}")


def stop(cfg: ClusterConfig, say: Callable[[str], None] = print) -> bool:
    found = read(cfg)
    if found is None:
        return False
    for pid in found.pids:
        if shell.alive(pid):
            os.killpg(pid, signal.SIGTERM)
    try:
        wait_for(lambda: not any(shell.alive(pid) for pid in found.pids), bool, "mirror stops", timeout=15)
    except Timeout:
        for pid in found.pids:
            if shell.alive(pid):
                os.killpg(pid, signal.SIGKILL)
    shutil.rmtree(folder(cfg), ignore_errors=True)
    say(f"mirror stopped (registry {found.registry})")
    return True

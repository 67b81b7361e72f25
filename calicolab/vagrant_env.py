"""The cluster's lifecycle through Vagrant (python-vagrant), one run folder per cluster."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO

import vagrant

from calicolab import shell
from calicolab.config import ROOT, ClusterConfig
from calicolab.errors import UserError
from calicolab.remote import SshTarget


class VagrantCluster:
    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = cfg
        self.dotfile = cfg.run_path / ".vagrant"
        env = dict(os.environ, CALICOLAB_CONFIG=str(cfg.run_path / "cluster.json"),
                   VAGRANT_DOTFILE_PATH=str(self.dotfile), VAGRANT_DEFAULT_PROVIDER=cfg.provider,
                   VAGRANT_CHECKPOINT_DISABLE="1")
        if cfg.is_lab:
            # Vagrant's machine index (in VAGRANT_HOME) is locked per machine name across
            # processes: lanes running side by side each get their own. The lab needs no boxes.
            env["VAGRANT_HOME"] = str(cfg.run_path / "vagrant.d")
        self.err_log = cfg.run_path / "vagrant-up.stderr.log"
        self.v = vagrant.Vagrant(root=str(ROOT), env=env, quiet_stdout=True, err_cm=self._err_file)

    @contextlib.contextmanager
    def _err_file(self) -> Iterator[IO[str]]:
        # Vagrant writes its errors to stderr: keep them, the one-line failure quotes them.
        self.err_log.parent.mkdir(parents=True, exist_ok=True)
        with self.err_log.open("a") as fh:
            yield fh

    def _last_error(self) -> str:
        try:
            lines = [ln.strip() for ln in self.err_log.read_text().splitlines() if ln.strip()]
        except OSError:
            return ""
        return " ".join(lines[-3:])[-300:]

    def _stream(self, what: str, lines, say: Callable[[str], None]) -> None:
        tail: deque[str] = deque(maxlen=12)
        self.err_log = self.cfg.run_path / f"vagrant-{what.split()[0]}.stderr.log"
        self.err_log.unlink(missing_ok=True)
        try:
            for line in lines:
                line = line.rstrip()
                if line:
                    tail.append(line)
                    say(line)
        except subprocess.CalledProcessError:
            cause = self._last_error() or next((ln for ln in reversed(tail) if "rror" in ln),
                                               tail[-1] if tail else "")
            raise UserError(f"vagrant {what} failed: {cause.strip()} (log: {self.err_log})") from None

    def up(self, say: Callable[[str], None]) -> None:
        shell.require("vagrant", "run `invoke setup` (apt-get install vagrant)")
        self._stream("up", self.v.up(provider=self.cfg.provider, stream_output=True), say)

    def status(self) -> dict[str, str]:
        if not self.dotfile.exists():
            return {n.name: "not_created" for n in self.cfg.nodes}
        try:
            return {s.name: s.state for s in self.v.status()}
        except subprocess.CalledProcessError:
            return {n.name: "unknown" for n in self.cfg.nodes}

    def is_running(self) -> bool:
        return all(state == "running" for state in self.status().values())

    def ssh_targets(self) -> dict[str, SshTarget]:
        targets = {}
        for node in self.cfg.nodes:
            try:
                conf = self.v.conf(vm_name=node.name)
            except subprocess.CalledProcessError:
                raise UserError(f"{node.name} has no SSH configuration: is the cluster up? "
                                "run `invoke up`") from None
            targets[node.name] = SshTarget(node.name, conf["HostName"], int(conf["Port"]),
                                           conf["User"], conf["IdentityFile"])
        return targets

    def destroy(self, say: Callable[[str], None], leftovers: bool) -> None:
        """Destroy this run's nodes; with leftovers, also whatever carries the prefix (other
        or crashed runs), which only an explicit `invoke destroy` asks for."""
        failed = False
        if self.dotfile.exists() and shell.which_or_none("vagrant"):
            try:
                self._stream("destroy", self.v._stream_vagrant_command(["destroy", "-f"]), say)
            except UserError as err:
                say(f"{err}; removing leftovers directly")
                failed = True
        if leftovers or failed:
            remove_leftovers(self.cfg, say)
        shutil.rmtree(self.dotfile, ignore_errors=True)


def remove_leftovers(cfg: ClusterConfig, say: Callable[[str], None]) -> None:
    """Remove what a crashed or interrupted run left behind, found by label and name."""
    if not shell.which_or_none("docker"):
        return
    containers = shell.run(["docker", "ps", "-aq", "--filter", f"label=calicolab.prefix={cfg.prefix}"],
                           check=False).stdout.split()
    if containers:
        say(f"removing {len(containers)} leftover node container(s)")
        shell.run(["docker", "rm", "-f", "-v", *containers], check=False)
    network = vagrant_network_name(cfg)
    exists = shell.run(["docker", "network", "inspect", network], check=False).ok
    if exists and shell.run(["docker", "network", "rm", network], check=False).ok:
        say(f"removed network {network}")


def vagrant_network_name(cfg: ClusterConfig) -> str:
    # The name Vagrant's docker provider gives the private network it creates.
    return f"vagrant_network_{cfg.subnet}"


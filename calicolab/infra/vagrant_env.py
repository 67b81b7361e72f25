"""The cluster's lifecycle through Vagrant (python-vagrant), one run folder per cluster."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from calicolab.core import shell
from calicolab.core.config import ClusterConfig
from calicolab.core.errors import Terminated, UserError
from calicolab.core.paths import ROOT
from calicolab.core.remote import SshTarget
from calicolab.infra import libvirt_host

# An interrupted `vagrant up` finishes or undoes what it started (destroy_on_error) before
# anything cleans up after it; this long at most, then it is killed.
VAGRANT_STOP_TIMEOUT = 180.0

# Vagrant's docker provider, preparing each node's private network, lists every Docker network
# on the host and then inspects them all in one `docker network inspect` (driver.rb,
# network_containing_address and network_defined?, Vagrant 2.3.4). A network removed between
# the two (another lane's destroy) makes that command exit 1 and the whole `up` fail, its
# message the tail of the inspect output. So a lab's `up` holds this host-wide lock shared and
# removing a lab network holds it exclusive: ups still run side by side, a removal waits.
NETWORK_LOCK = Path(tempfile.gettempdir()) / "calicolab-docker-networks.lock"
# Before it creates a node, Vagrant's docker provider reads the forwarded ports of every
# container on the host: `docker ps -a -q`, then `docker inspect` of each in turn (driver.rb
# read_used_ports, from prepare_forwarded_port_collision_params.rb, Vagrant 2.3.4). Any container
# removed in between, anyone's, fails that `up` with "No such object". Nothing of the run was
# wrong: it is brought up again, this often at most.
LAB_UP_ATTEMPTS = 3
_INSPECT_VANISHED = re.compile(r'Command: \["docker", "inspect", "(?P<id>[0-9a-f]{12,64})".*?'
                               r"Error: No such object: (?P=id)\b", re.S)
# An `up` on a loaded machine takes a minute or two; past this the holder is stuck, and the
# waiter goes on (a lane broken by that says so itself).
NETWORK_LOCK_WAIT = 600.0


@contextlib.contextmanager
def docker_networks_lock(exclusive: bool, say: Callable[[str], None]) -> Iterator[None]:
    """Hold the host-wide lock on Docker's network list: shared while a lab's `vagrant up`
    reads it, exclusive while a lab network is removed."""
    fd = os.open(NETWORK_LOCK, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + NETWORK_LOCK_WAIT
        told = False
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    say(f"{NETWORK_LOCK} still held after {NETWORK_LOCK_WAIT:.0f} s: going on without it")
                    break
                if not told:
                    say("waiting for another lane's " + ("`vagrant up` to finish with Docker's networks"
                                                         if exclusive else "network removal"))
                    told = True
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


class VagrantCluster:
    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = cfg
        self.dotfile = cfg.run_path / ".vagrant"
        env = dict(os.environ, CALICOLAB_CONFIG=str(cfg.run_path / "cluster.json"),
                   VAGRANT_DOTFILE_PATH=str(self.dotfile), VAGRANT_DEFAULT_PROVIDER=cfg.provider,
                   VAGRANT_CHECKPOINT_DISABLE="1")
        # Vagrant's machine index (in VAGRANT_HOME) is locked per machine name across processes:
        # lanes running side by side each get their own. The lab needs no boxes; a VM run adds its
        # box there (from the box cache), so no run sees another's boxes.
        env["VAGRANT_HOME"] = str(cfg.run_path / "vagrant.d")
        self.env = env
        self.err_log = cfg.run_path / "vagrant-up.stderr.log"
        self.v = _python_vagrant().Vagrant(root=str(ROOT), env=env, quiet_stdout=True, err_cm=self._err_file)

    @contextlib.contextmanager
    def _err_file(self) -> Iterator[IO[str]]:
        # Vagrant writes its errors to stderr: keep them, the one-line failure quotes them.
        self.err_log.parent.mkdir(parents=True, exist_ok=True)
        with self.err_log.open("a") as fh:
            yield fh

    def _last_error(self) -> str:
        return vagrant_failure(self._stderr_text())

    def _stream(self, what: str, args: list[str], say: Callable[[str], None]) -> None:
        """Run `vagrant <args>`, showing its output line by line.

        Run here rather than through python-vagrant's stream, which stops waiting for Vagrant
        0.25 s after a Ctrl-C: Vagrant then goes on creating (or undoing) containers while the
        cleanup runs, and a container appears after it (found by tests/lab)."""
        tail: deque[str] = deque(maxlen=12)
        self.err_log = self.cfg.run_path / f"vagrant-{what.split()[0]}.stderr.log"
        self.err_log.unlink(missing_ok=True)
        cmd = [shell.require("vagrant", "run `invoke setup` (apt-get install vagrant)"), *args]
        with self._err_file() as err:
            proc = subprocess.Popen(cmd, cwd=str(ROOT), env=self.env, stdout=subprocess.PIPE, stderr=err)
            assert proc.stdout is not None
            try:
                for raw in iter(proc.stdout.readline, b""):
                    line = _last_progress(raw.decode(errors="replace").rstrip())
                    if line:
                        tail.append(line)
                        say(line)
                rc = proc.wait()
            except BaseException as err:
                # Ctrl-C in a terminal reached Vagrant too; a SIGTERM only reached us: pass it
                # on as the one Ctrl-C Vagrant handles gracefully.
                _wait_for_stop(proc, what, say, forward=isinstance(err, Terminated))
                raise
            finally:
                proc.stdout.close()
        if rc != 0:
            cause = self._last_error() or next((ln for ln in reversed(tail) if "rror" in ln),
                                               tail[-1] if tail else "")
            raise UserError(f"vagrant {what} failed: {cause.strip()} (log: {self.err_log})")

    def up(self, say: Callable[[str], None]) -> None:
        if not self.cfg.is_lab:
            self._stream("up", ["up", f"--provider={self.cfg.provider}"], say)
            return
        # On the lab Vagrant must not clean up after a failed up itself: its docker provider's
        # destroy removes every unused vagrant_network_* on the host, other lanes' included.
        for attempt in range(1, LAB_UP_ATTEMPTS + 1):
            try:
                with docker_networks_lock(exclusive=False, say=say):
                    self._stream("up", ["up", f"--provider={self.cfg.provider}", "--no-destroy-on-error"], say)
                return
            except BaseException as err:
                vanished = vanished_container(self._stderr_text()) if isinstance(err, UserError) else None
                ours = self._container_ids()
                say("removing what the failed `vagrant up` created")
                remove_lab_nodes(self.cfg, say, ours, every_run=False)
                shutil.rmtree(self.dotfile, ignore_errors=True)
                # One of this run's own nodes gone is no race but a fault: not tried again.
                own = vanished is not None and any(cid.startswith(vanished) or vanished.startswith(cid) for cid in ours)
                if vanished is None or own or attempt == LAB_UP_ATTEMPTS:
                    raise
                say(f"container {vanished[:12]}, not this run's, was removed while Vagrant read every container's "
                    "ports (driver.rb read_used_ports, Vagrant 2.3.4): bringing the nodes up again "
                    f"(attempt {attempt + 1} of {LAB_UP_ATTEMPTS})")

    def _stderr_text(self) -> str:
        try:
            return self.err_log.read_text(errors="replace")
        except OSError:
            return ""

    def status(self) -> dict[str, str]:
        if not self.dotfile.exists():
            return {n.name: "not_created" for n in self.cfg.nodes}
        if self.cfg.is_lab:
            return self._lab_status()
        try:
            return {s.name: s.state for s in self.v.status()}
        except subprocess.CalledProcessError:
            return {n.name: "unknown" for n in self.cfg.nodes}

    def _lab_status(self) -> dict[str, str]:
        """What Vagrant's docker provider reads for `vagrant status` (the recorded container's
        State.Running), without starting Vagrant: that took 1.2 to 2.4 s a call here."""
        ids = {node.name: self._recorded_id(node.name) for node in self.cfg.nodes}
        known = [cid for cid in ids.values() if cid]
        running: dict[str, bool] = {}
        if known:
            out = shell.run(["docker", "inspect", "--format", "{{.Id}} {{.State.Running}}", *known], check=False)
            running = {cid: flag == "true" for cid, flag in
                       (line.split() for line in out.stdout.splitlines() if len(line.split()) == 2)}
        return {name: ("not_created" if cid not in running else "running" if running[cid] else "stopped")
                for name, cid in ids.items()}

    def is_running(self) -> bool:
        return all(state == "running" for state in self.status().values())

    def ssh_targets(self) -> dict[str, SshTarget]:
        missing = UserError(f"{', '.join(n.name for n in self.cfg.nodes)}: no SSH configuration: is the "
                            "cluster up? run `invoke up`")
        try:
            # Every node in one `vagrant ssh-config`: one start of Vagrant, not one per node.
            confs = parse_ssh_config(self.v.ssh_config())
        except subprocess.CalledProcessError:
            raise missing from None
        targets = {}
        for node in self.cfg.nodes:
            conf = confs.get(node.name)
            if not conf or not {"HostName", "Port", "User", "IdentityFile"} <= conf.keys():
                raise missing
            targets[node.name] = SshTarget(node.name, conf["HostName"], int(conf["Port"]),
                                           conf["User"], conf["IdentityFile"])
        return targets

    def _recorded_id(self, node: str) -> str:
        try:
            return (self.dotfile / "machines" / node / "docker" / "id").read_text().strip()
        except OSError:
            return ""

    def _container_ids(self) -> list[str]:
        """The node containers Vagrant recorded in this run's dotfile."""
        return [cid for cid in (self._recorded_id(node.name) for node in self.cfg.nodes) if cid]

    def destroy(self, say: Callable[[str], None], leftovers: bool) -> None:
        """Destroy this run's nodes; with leftovers, also whatever carries the prefix (other
        or crashed runs), which only an explicit `invoke destroy` asks for."""
        known = self.dotfile.exists()
        if self.cfg.is_lab:
            # Not `vagrant destroy`: the docker provider's destroy also removes every unused
            # vagrant_network_* on the host, so a lane in the middle of `up` (network made,
            # containers not attached yet) lost its network to another lane's destroy.
            removed = remove_lab_nodes(self.cfg, say, self._container_ids(), every_run=leftovers)
        else:
            failed = False
            libvirt = self.cfg.provider == "libvirt" and libvirt_host.touched(self.cfg)
            if libvirt:  # vagrant destroy talks to libvirtd, which an earlier stage may have stopped
                libvirt_host.ensure_daemons(self.cfg, say)
            if known and shell.which_or_none("vagrant"):
                try:
                    self._stream("destroy", ["destroy", "-f"], say)
                except UserError as err:
                    say(f"{err}; removing leftovers directly")
                    failed = True
            removed = remove_leftovers(self.cfg, say) if leftovers or failed else 0
            if libvirt:
                # Whatever vagrant destroy left (an interrupted up), the pool, the networks' leftovers,
                # the daemons this run started and the iptables chains libvirt leaves behind.
                removed += libvirt_host.teardown(self.cfg, say)
        shutil.rmtree(self.dotfile, ignore_errors=True)
        if not known and not removed:
            say(f"nothing to remove for prefix {self.cfg.prefix} (subnet {self.cfg.subnet})")


def _last_progress(line: str) -> str:
    """vagrant-libvirt redraws `Progress: N%` in place (ESC[K, no newline) while it uploads the
    box volume: keep the last state of such a line, not thousands of them."""
    if "Progress:" not in line or "\x1b[K" not in line:
        return line
    parts = [p for p in line.split("\x1b[K") if p.strip()]
    last = parts[-1] if parts else ""
    if not last.startswith("Progress:") and len(parts) > 1:  # the next message follows the last redraw
        return f"{parts[-2].strip()} {last}"
    return last


def _python_vagrant():
    # python-vagrant warns on stderr at import when vagrant is not installed; the preflight
    # says so in its one line instead (a second stderr line would break that rule).
    logging.getLogger("vagrant").addHandler(logging.NullHandler())
    import vagrant  # here, after the handler above: its import-time warning stays off stderr

    return vagrant


def _wait_for_stop(proc: subprocess.Popen[bytes], what: str, say: Callable[[str], None],
                   forward: bool = False) -> None:
    """After Ctrl-C: Vagrant got it too (same process group) and stops gracefully; wait for
    that, still showing its output, so nothing it does races the cleanup."""
    if proc.poll() is not None:
        return
    if forward:
        proc.send_signal(signal.SIGINT)
    say(f"waiting for vagrant {what} to stop (at most {VAGRANT_STOP_TIMEOUT:.0f} s)")

    def drain() -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            if raw.strip():
                say(raw.decode(errors="replace").rstrip())

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=VAGRANT_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(timeout=5)


def remove_lab_nodes(cfg: ClusterConfig, say: Callable[[str], None], ids: list[str], every_run: bool) -> int:
    """Remove the lab's node containers and private network with Docker directly: this run's
    (recorded ids, calicolab.run label) or, with every_run, every container of the prefix.
    Returns how many objects were removed."""
    if not shell.which_or_none("docker"):
        return 0
    filters = [f"label=calicolab.run={cfg.run_path}"] + ([f"label=calicolab.prefix={cfg.prefix}"] if every_run else [])
    found: dict[str, str] = {}
    for flt in filters:
        out = shell.run(["docker", "ps", "-a", "--no-trunc", "--filter", flt, "--format", "{{.ID}} {{.Names}}"],
                        check=False)
        found.update(line.split(maxsplit=1) for line in out.stdout.splitlines() if " " in line)
    if ids:  # recorded by Vagrant (also nodes made before the run label existed)
        out = shell.run(["docker", "inspect", "--format", "{{.Id}} {{.Name}}", *ids], check=False)
        found.update((cid, name.lstrip("/")) for cid, name in
                     (line.split(maxsplit=1) for line in out.stdout.splitlines() if " " in line))
    if found:
        say(f"removing {len(found)} node container(s): {', '.join(sorted(set(found.values())))}")
        shell.run(["docker", "rm", "-f", "-v", *found], check=False, timeout=120)
    network = vagrant_network_name(cfg)
    removed_network = False
    if shell.run(["docker", "network", "inspect", network], check=False).ok:
        with docker_networks_lock(exclusive=True, say=say):
            out = shell.run(["docker", "network", "rm", network], check=False)
        removed_network = out.ok
        say(f"removed network {network}" if out.ok else
            f"network {network} not removed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return len(found) + int(removed_network)


def remove_leftovers(cfg: ClusterConfig, say: Callable[[str], None]) -> int:
    """Remove what a crashed or interrupted run left behind, found by label and name;
    returns how many objects were removed."""
    if not shell.which_or_none("docker"):
        return 0
    containers = shell.run(["docker", "ps", "-aq", "--filter", f"label=calicolab.prefix={cfg.prefix}"],
                           check=False).stdout.split()
    if containers:
        say(f"removing {len(containers)} leftover node container(s)")
        shell.run(["docker", "rm", "-f", "-v", *containers], check=False)
    network = vagrant_network_name(cfg)
    removed_network = False
    if shell.run(["docker", "network", "inspect", network], check=False).ok:
        with docker_networks_lock(exclusive=True, say=say):
            removed_network = shell.run(["docker", "network", "rm", network], check=False).ok
    if removed_network:
        say(f"removed network {network}")
    return len(containers) + int(removed_network)


# Vagrant's batch action (every machine's `up` at once) reports each machine's error under one of
# two headings (templates/locales/en.yml, batch_unexpected_error and batch_vagrant_error, 2.3.4):
# the message after a blank line; then, for an unexpected error, the backtrace, and for a failed
# Docker command (docker_provider.errors.execute_error) its `Command:`, `Stderr:` and `Stdout:`.
_BATCH_HEADING = re.compile(r"executing the action on the\s+'(?P<machine>[^']+)'\s+machine\.\s+Please "
                            r"(?:report this as a bug|handle this error then try again):\s*\n")
_BACKTRACE = re.compile(r"^\s*(?:from\s+)?\S+\.rb:\d+:in `")


def vanished_container(stderr: str) -> str | None:
    """The id of the container that was gone when Vagrant inspected it, if that is how `up` failed."""
    m = _INSPECT_VANISHED.search(stderr)
    return m["id"] if m else None


def vagrant_failure(stderr: str, limit: int = 240) -> str:
    """Each machine's error in Vagrant's stderr: its message and a failed command's stderr,
    without the backtrace, whose last lines say only where Vagrant's batch action ran."""
    headings = list(_BATCH_HEADING.finditer(stderr))
    found = []
    for i, heading in enumerate(headings):
        block = stderr[heading.end():headings[i + 1].start() if i + 1 < len(headings) else len(stderr)]
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", block) if p.strip()]
        said = paragraphs[0] if paragraphs else ""
        said += "".join(f" {p}" for p in paragraphs[1:] if p.startswith("Stderr:") and p != "Stderr:")
        found.append(f"{heading['machine']}: {said[:limit]}")
    if found:
        return "; ".join(found)
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not _BACKTRACE.match(ln)]
    return " ".join(lines[-3:])[-300:]


def parse_ssh_config(text: str) -> dict[str, dict[str, str]]:
    """`vagrant ssh-config`'s output for every machine: a `Host NAME` line, then its settings."""
    hosts: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if not key:
            continue
        if key == "Host":
            current = hosts.setdefault(value.strip(), {})
        elif current is not None:
            current[key] = value.strip().strip('"')  # Vagrant quotes a path with spaces
    return hosts


def vagrant_network_name(cfg: ClusterConfig) -> str:
    # The name Vagrant's docker provider gives the private network it creates.
    return f"vagrant_network_{cfg.subnet}"


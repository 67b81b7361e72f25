"""The confd service: keeps BIRD's files in step with etcd.

Real confd (`-watch -interval=5`) renders the templates when watched keys change and every
5 s, checks each staged file with `bird -p -c` (check_cmd) and reloads with
`pkill -HUP bird || true` (reload_cmd; the pattern also matches bird6). The double watches
etcd too (a v2 long-poll on /calico from the store index of its last read) and does the same
check and reload. A pass is one read (the node's own address, with etcd's store index); the
templates' inputs are read and rendered again only when that index moved, and every 5 s as real
confd's interval does, so an idle node's confd and etcd stay quiet: one request per 5 s (a read
every second, as before, cost an emulated guest 3 % of its CPU).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from .bird_config import BirdInputs, gather_inputs, render_all, write_config
from .config import Config
from .etcd import EtcdClient, EtcdError
from .registration import BGP_HOSTS
from .runsv import set_process_name

log = logging.getLogger("confd")


def check(inputs: BirdInputs) -> str | None:
    """bird -p / bird6 -p on a staged copy; the error text, or None when both parse."""
    with tempfile.TemporaryDirectory(prefix="confd-") as tmp:
        staged = Path(tmp)
        write_config(render_all(inputs, staged), staged)
        for binary, name in (("bird", "bird.cfg"), ("bird6", "bird6.cfg")):
            try:
                res = subprocess.run([binary, "-p", "-c", str(staged / name)], capture_output=True,
                                     text=True, timeout=20, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"{binary} -p: {exc}"
            if res.returncode != 0:
                return f"{binary} -p: {(res.stderr or res.stdout).strip()}"
    return None


def hup_bird() -> int:
    """`pkill -HUP bird`: every process whose name contains 'bird'."""
    sent = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if "bird" in (entry / "comm").read_text():
                os.kill(int(entry.name), signal.SIGHUP)
                sent += 1
        except (OSError, ValueError):
            continue
    return sent


def render_once(etcd: EtcdClient, cfg: Config, router_id: IPv4Address, reload: bool = True) -> bool:
    inputs = gather_inputs(etcd, cfg.nodename, router_id)
    files = render_all(inputs, cfg.bird_config_dir)
    current = {}
    for name in files:
        try:
            current[name] = (cfg.bird_config_dir / name).read_text()
        except OSError:
            current[name] = None
    if current == files:
        return False
    problem = check(inputs)
    if problem:
        log.error("Check command failed, not installing the new BIRD config: %s", problem)
        return False
    write_config(files, cfg.bird_config_dir)
    log.info("Target config %s out of sync: %d mesh peer(s) %s, own blocks %s",
             cfg.bird_config_dir / "bird.cfg", len(inputs.peers), [str(p.ip) for p in inputs.peers],
             [str(b) for b in inputs.own_blocks] or "none")
    if reload:
        log.info("Reloading BIRD (SIGHUP to %d process(es))", hup_bird())
    return True


FULL_RENDER_S = 5.0  # real confd's -interval=5: render even when nothing was seen to change


@dataclass
class Poller:
    """One poll per `step`: render when etcd's index moved since the last render, or when
    FULL_RENDER_S passed (a file edited by hand, or a failed check, is tried again)."""

    etcd: EtcdClient
    cfg: Config
    clock: Callable[[], float] = time.monotonic
    rendered_at_index: int | None = None
    rendered_at: float = float("-inf")
    seen_index: int | None = None  # etcd's store index at the last pass's read

    def step(self) -> bool:
        """True when this poll rendered (whether or not a file changed)."""
        own, index = self.etcd.get_value_and_index(f"{BGP_HOSTS}/{self.cfg.nodename}/ip_addr_v4")
        self.seen_index = index
        if not own:
            log.warning("No ip_addr_v4 for node %s in etcd yet", self.cfg.nodename)
            return False
        now = self.clock()
        if index == self.rendered_at_index and now - self.rendered_at < FULL_RENDER_S:
            return False
        # The index was read before the inputs: a write after it moves the next poll's index.
        render_once(self.etcd, self.cfg, IPv4Address(own.split("/")[0]))
        self.rendered_at_index, self.rendered_at = index, now
        return True

    def wait(self, timeout: float = FULL_RENDER_S) -> bool:
        """Until something under /calico changes after the last pass's read (real confd's -watch),
        or `timeout` passes: True when a change came. A watch that fails returns at once, and the
        next pass reads afresh (and says why when etcd is gone)."""
        if self.seen_index is None:
            return False
        try:
            return self.etcd.wait_for_change("/calico", self.seen_index, timeout) is not None
        except EtcdError:
            return False


def main() -> int:
    set_process_name("confd")
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s [%(levelname)s] confd: %(message)s")
    # Real confd says so before its first render (confd's main.go: "Starting confd", then the
    # backend): svlogd's `current` is never empty once the service ran, whatever it renders.
    log.info("Starting confd")
    log.info("Backend set to etcd")
    cfg = Config.from_env(os.environ)
    poller = Poller(EtcdClient.for_config(cfg), cfg)
    interval = float(os.environ.get("CALICO_DOUBLE_CONFD_POLL", "1"))  # the retry after a failed pass
    while True:
        try:
            poller.step()
        except (EtcdError, OSError, ValueError) as exc:
            log.warning("Render failed (will retry): %s", exc)
            time.sleep(interval)
            continue
        poller.wait()


if __name__ == "__main__":
    raise SystemExit(main())

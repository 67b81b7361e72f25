"""Felix stand-in: the few dataplane settings without which workloads could not talk.

Real felix programs per-endpoint policy chains; the double only accepts forwarded traffic
on cali+ interfaces (Docker may set the FORWARD policy to DROP) and turns on forwarding.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .netdev import CommandError, NetDev, run

log = logging.getLogger(__name__)

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]

FORWARD_RULES: tuple[tuple[str, ...], ...] = (
    ("-i", "cali+", "-m", "comment", "--comment", "calico-double: from workloads", "-j", "ACCEPT"),
    ("-o", "cali+", "-m", "comment", "--comment", "calico-double: to workloads", "-j", "ACCEPT"),
)


def count_rules(save_output: str) -> int:
    return sum(1 for line in save_output.splitlines() if line.startswith("-A "))


def choose_iptables(runner: Runner = run) -> str:
    """Use the iptables backend the host already uses (the one holding more rules).

    The image has both; writing nft rules on a host whose Docker uses legacy iptables
    (CentOS 7) or the reverse would put our ACCEPTs in a table the kernel path ignores.
    """
    counts = {}
    for variant in ("legacy", "nft"):
        try:
            result = runner([f"iptables-{variant}-save"])
        except FileNotFoundError:
            continue
        if result.returncode == 0:
            counts[variant] = count_rules(result.stdout or "")
    if not counts:
        return "iptables"
    if counts.get("legacy", -1) > counts.get("nft", -1):
        return "iptables-legacy"
    return "iptables-nft" if "nft" in counts else "iptables-legacy"


@dataclass
class Felix:
    netdev: NetDev
    runner: Runner = run
    iptables: str = ""

    def start(self) -> None:
        self.netdev.write_sysctl("net/ipv4/ip_forward", "1")
        self.check_rp_filter()
        if not self.iptables:
            self.iptables = choose_iptables(self.runner)
            log.info("Using %s for the FORWARD accept rules", self.iptables)
        self.ensure_forward_rules()

    def check_rp_filter(self) -> None:
        path = self.netdev.proc_sys / "net/ipv4/conf/all/rp_filter"
        try:
            value = path.read_text().strip()
        except OSError:
            return
        if value not in ("0", "1"):
            # Real felix refuses to run with loose RPF; the double only warns loudly.
            log.error("Kernel's RPF check is set to 'loose' (net.ipv4.conf.all.rp_filter=%s); "
                      "Calico's felix would exit: set it to 0 or 1", value)

    def ensure_forward_rules(self) -> None:
        """Insert the accept rules at the top of FORWARD unless already there (idempotent)."""
        for rule in reversed(FORWARD_RULES):
            check = self.runner([self.iptables, "-w", "-C", "FORWARD", *rule])
            if check.returncode == 0:
                continue
            result = self.runner([self.iptables, "-w", "-I", "FORWARD", "1", *rule])
            if result.returncode != 0:
                raise CommandError(f"{self.iptables} -I FORWARD: {(result.stderr or '').strip()}")
            log.info("Inserted FORWARD rule: %s", " ".join(rule))

"""Stop a node's etcd as systemd does, but bounded by etcd's own shutdown time.

etcd's graceful stop is bounded. On SIGTERM, etcdmain's interrupt handler calls
embed.Etcd.Close (v3.3.25 embed/etcd.go, Close and stopServers). That gives each client listener
ReqTimeout to finish its requests: 5 s + 2 election timeouts, 7 s with the guide's defaults, and
the guide listens on two client URLs. A stopping leader hands its leadership over within
ReqTimeout (etcdserver TransferLeadership), and the peers' idle connections get 1 s. That is
about 25 s at most.

etcd 3.3 sometimes goes past that and waits for systemd's stop timeout (TimeoutStopSec, 90 s,
then SIGKILL). The upgrade lane's first etcd hop in CI was "stopped in 90.2 s", and upstream
reports the same (etcd-io/etcd#11208, #8224: shutdown stuck behind gRPC). Past the bound the
process is hung, not shutting down. So it gets SIGQUIT: the Go runtime writes every goroutine's
stack to stderr (the journal) and exits. The hang ends after the bound, not 90 s, and the
evidence of where it hung is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from calicolab.core.polling import Timeout, wait_for
from calicolab.core.remote import Node

OWN_BOUND = 30.0  # etcd's own longest graceful stop (above), with margin
AFTER_QUIT = 30.0  # the goroutine dump and exit; systemd's SIGKILL comes at 90 s anyway


@dataclass(frozen=True)
class Stopped:
    node: str
    seconds: float
    hung: bool  # still running past OWN_BOUND: ended with SIGQUIT
    journal: str = ""  # etcd's journal since the stop (with the goroutine dump) when hung

    def summary(self) -> str:
        if not self.hung:
            return f"stopped in {self.seconds:.1f} s"
        return (f"stopped in {self.seconds:.1f} s: hung past etcd's own shutdown bound ({OWN_BOUND:.0f} s), "
                "ended with SIGQUIT (goroutine stacks in the journal)")


def _state(node: Node) -> str:
    return node.run("systemctl is-active etcd").stdout.strip()


def _down(state: str) -> bool:
    return state in ("inactive", "failed")


def stop(node: Node) -> Stopped:
    """`systemctl stop etcd`, waiting at most OWN_BOUND for etcd to exit by itself."""
    began = node.run("date +%s.%N; systemctl stop --no-block etcd", check=True).stdout.split()[0]
    start = float(began)
    try:
        wait_for(lambda: _state(node), _down, f"{node.name}: etcd stopped", timeout=OWN_BOUND)
        hung = False
    except Timeout:
        hung = True
        node.run("systemctl kill --signal=SIGQUIT etcd")
        wait_for(lambda: _state(node), _down, f"{node.name}: etcd exited after SIGQUIT", timeout=AFTER_QUIT)
    ended = float(node.run("date +%s.%N", check=True).stdout.strip())
    journal = ""
    if hung:
        # A local time, not `@epoch`: systemd 219 (CentOS 7) may not parse the latter.
        since = f"$(date -d @{int(start)} '+%Y-%m-%d %H:%M:%S')"
        journal = node.run(f'journalctl -u etcd --no-pager -o cat --since "{since}"', timeout=60).stdout
    return Stopped(node.name, round(ended - start, 1), hung, journal)

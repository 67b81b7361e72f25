"""Stopping etcd within its own shutdown bound: a member that exits is left alone, a member
still running past the bound is ended with SIGQUIT and its journal kept."""

from __future__ import annotations

import time

from calicolab.core.remote import CommandResult
from calicolab.stack import etcd_stop


class FakeSystemd:
    """One node's etcd unit: it goes inactive `exits_after` seconds after the stop, or never
    (a hang) until it gets SIGQUIT."""

    def __init__(self, exits_after: float | None) -> None:
        self.name = "node1"
        self.exits_after = exits_after
        self.stopped_at: float | None = None
        self.quit = False
        self.calls: list[str] = []

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120) -> CommandResult:
        self.calls.append(cmd)
        out = ""
        if "systemctl stop --no-block etcd" in cmd:
            self.stopped_at = time.monotonic()
            out = f"{time.time():.3f}\n"
        elif cmd.startswith("date"):
            out = f"{time.time():.3f}\n"
        elif cmd == "systemctl kill --signal=SIGQUIT etcd":
            self.quit = True
        elif cmd == "systemctl is-active etcd":
            assert self.stopped_at is not None, "asked for the state before stopping"
            gone = self.quit or (self.exits_after is not None
                                 and time.monotonic() - self.stopped_at >= self.exits_after)
            out = ("failed" if self.quit else "inactive") if gone else "deactivating"
        elif cmd.startswith("journalctl -u etcd"):
            out = "SIGQUIT: quit\ngoroutine 1 [chan receive]:\n"
        return CommandResult(self.name, cmd, 0, out, "")


def test_a_member_that_exits_by_itself_is_not_signalled(monkeypatch):
    monkeypatch.setattr(etcd_stop, "OWN_BOUND", 5.0)
    node = FakeSystemd(exits_after=0.3)
    stopped = etcd_stop.stop(node)
    assert not stopped.hung and stopped.journal == ""
    assert "systemctl kill --signal=SIGQUIT etcd" not in node.calls
    assert stopped.summary().startswith("stopped in ") and "hung" not in stopped.summary()


def test_a_member_still_running_past_the_bound_is_ended_and_its_journal_kept(monkeypatch):
    monkeypatch.setattr(etcd_stop, "OWN_BOUND", 0.5)
    node = FakeSystemd(exits_after=None)
    started = time.monotonic()
    stopped = etcd_stop.stop(node)
    # Ended soon after the bound, not at systemd's 90 s.
    assert time.monotonic() - started < 5
    assert stopped.hung
    assert "systemctl kill --signal=SIGQUIT etcd" in node.calls
    assert "goroutine 1" in stopped.journal
    assert "hung past etcd's own shutdown bound" in stopped.summary()

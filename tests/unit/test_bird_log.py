"""Reading what calico/node's BIRD log gained during a fault or a restart: the commands
probes.log_mark and probes.log_since send, run by a real shell on a real file (svlogd appends;
the file may not exist yet on a node whose calico-node never ran)."""

from __future__ import annotations

import subprocess

from calicolab.core.remote import CommandResult
from calicolab.stack import parsers, probes


class ShellNode:
    """A node whose commands run in this machine's bash."""

    name, ip = "node2", "192.168.223.130"

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120) -> CommandResult:
        res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout)
        return CommandResult(self.name, cmd, res.returncode, res.stdout, res.stderr)


LINES = ["2026-12-02_16:43:48.90092 bird: Mesh_192_168_223_131: State changed to start",
         "2026-12-02_16:43:53.06244 bird: Mesh_192_168_223_131: State changed to feed",
         "2026-12-02_16:43:53.06269 bird: Mesh_192_168_223_131: State changed to start"]


def test_only_what_was_written_after_the_mark_is_read(tmp_path):
    log = tmp_path / "current"
    log.write_text(LINES[0] + "\n" + LINES[1] + "\n")  # feed before the mark ...
    node = ShellNode()
    mark = probes.log_mark(node, str(log))
    assert mark == 2
    with log.open("a") as out:
        out.write(LINES[2] + "\n")
    assert probes.log_since(node, mark, str(log)) == LINES[2] + "\n"
    # ... so the drop after it is not one "as it came up" within the window: the window saw no feed
    assert parsers.bird_sessions_dropped(probes.log_since(node, mark, str(log))) == []
    assert parsers.bird_sessions_dropped(probes.log_since(node, 0, str(log))) == [
        ("Mesh_192_168_223_131", "2026-12-02_16:43:53.06269")]


def test_a_log_not_written_yet_is_empty_not_an_error(tmp_path):
    node = ShellNode()
    missing = str(tmp_path / "bird" / "current")
    assert probes.log_mark(node, missing) == 0
    assert probes.log_since(node, 0, missing) == ""

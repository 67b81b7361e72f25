"""Reading what calico/node's BIRD log gained during a fault or a restart: the commands
probes.log_mark and probes.log_since send, run by a real shell on a real file (svlogd appends;
the file may not exist yet on a node whose calico-node never ran)."""

from __future__ import annotations

import subprocess

from calicolab.core.remote import CommandResult
from calicolab.measure import bgp_watch
from calicolab.stack import parsers, probes


class ShellNode:
    """A node whose commands run in this machine's bash."""

    name, ip = "node2", "192.168.223.130"

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120) -> CommandResult:
        res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout)
        return CommandResult(self.name, cmd, res.returncode, res.stdout, res.stderr)


# node1's shape B from the recording (tests/unit/fixtures/bird_collision/B-12-node1.log).
LINES = ["2026-12-04_15:57:52.42723 bird: Mesh_192_168_241_130: State changed to wait",
         "2026-12-04_15:57:52.42725 bird: Mesh_192_168_241_130: Received: Connection collision resolution",
         "2026-12-04_15:57:52.42727 bird: Mesh_192_168_241_130: BGP session closed",
         "2026-12-04_15:57:52.42728 bird: Mesh_192_168_241_130: State changed to stop"]


def test_only_what_was_written_after_the_mark_is_read(tmp_path):
    log = tmp_path / "current"
    log.write_text(LINES[0] + "\n")  # the session came up before the mark ...
    node = ShellNode()
    mark = probes.log_mark(node, str(log))
    assert mark == 1
    with log.open("a") as out:
        out.write("\n".join(LINES[1:]) + "\n")
    assert probes.log_since(node, mark, str(log)) == "\n".join(LINES[1:]) + "\n"
    # ... and its end, read from the window's lines alone, is still the collision it was
    drops = parsers.bgp_drops({"node1": probes.log_since(node, mark, str(log))})
    assert [(d.shape, d.cause, d.up_s) for d in drops] == [("B", "Received: Connection collision resolution", None)]
    drops = parsers.bgp_drops({"node1": probes.log_since(node, 0, str(log))})
    assert [(d.shape, d.at) for d in drops] == [("B", "2026-12-04_15:57:52.42728")]


def test_a_log_not_written_yet_is_empty_not_an_error(tmp_path):
    node = ShellNode()
    missing = str(tmp_path / "bird" / "current")
    assert probes.log_mark(node, missing) == 0
    assert probes.log_since(node, 0, missing) == ""


def test_debug_is_in_effect_only_with_a_debug_line_after_birds_last_configuration():
    # bgp_watch.debug_in_effect: "Scanning interfaces" (the device protocol's debug-only trace)
    # after BIRD last took a configuration, by a reload (Reconfigured) or by starting (Started).
    scan = "2026-12-06_03:10:0{}.00000 bird: device1: Scanning interfaces"
    reconf = "2026-12-06_03:10:01.00000 bird: Reconfigured"
    started = "2026-12-06_03:10:03.00000 bird: Started"
    assert bgp_watch.debug_in_effect("\n".join([reconf, scan.format(2)]))
    assert not bgp_watch.debug_in_effect("\n".join([scan.format(0), reconf]))
    # A BIRD restarted at info level logs no debug line after its start: debug is not in effect,
    # however many the BIRD before it logged (a watch held across windows must not take those).
    assert not bgp_watch.debug_in_effect("\n".join([reconf, scan.format(2), started]))
    assert bgp_watch.debug_in_effect("\n".join([reconf, scan.format(2), started, scan.format(5)]))

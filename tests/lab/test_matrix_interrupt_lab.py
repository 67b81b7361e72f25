"""An interrupted `invoke matrix` on the real lab: the signal reaches the matrix alone (a
cancelled CI job), the matrix forwards it to its lanes once, and each lane destroys its own
cluster before the matrix exits; nothing of the lane is left."""

from __future__ import annotations

import signal

from labkit import interrupt, wait_until

from calicolab.core import shell


def _lane_containers(prefix: str) -> list[str]:
    out = shell.run(["docker", "ps", "-a", "--filter", f"label=calicolab.prefix={prefix}",
                     "--format", "{{.Names}}"], check=False)
    return sorted(out.stdout.split())


def test_sigterm_to_a_matrix_destroys_its_running_lane(lane, tmp_path):
    log = tmp_path / "matrix.log"
    lane_prefix = f"{lane.prefix}-m1"
    # One lane, on this test's own subnet (the matrix would otherwise pick 192.168.224.0/24).
    proc = lane.start("matrix", "--lanes", f"name=m1,suite=read-only,subnet={lane.subnet}", log=log)
    wait_until("a node container of the matrix lane", lambda: _lane_containers(lane_prefix),
               timeout=300, proc=proc, log=log)
    rc = interrupt(proc, sig=signal.SIGTERM, group=False)
    output = log.read_text(errors="replace")
    assert rc == 143, f"exit {rc}\n{output[-2000:]}"
    lane_log = (lane.reports_dir / "lanes" / "m1" / "output.log").read_text(errors="replace")
    assert "asking every lane to stop" in output, output[-3000:]
    assert "<== destroy: passed" in lane_log and lane_log.rstrip().endswith("interrupted"), lane_log[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert _lane_containers(lane_prefix) == [], output[-3000:]
    assert not lane.network_exists(), output[-3000:]

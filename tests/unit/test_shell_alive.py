"""shell.alive: the one check, for the mirror and the libvirt daemons the tasks start, that a
recorded pid still runs. A zombie (exited, not reaped) must count as gone."""

from __future__ import annotations

import subprocess
import sys

from calicolab.core import shell
from calicolab.core.polling import wait_for


def test_a_running_process_is_alive_and_its_zombie_is_not():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert shell.alive(child.pid)
        child.stdin.close()  # it exits; not reaped until wait(), so its pid stays, as a zombie
        zombie = wait_for(lambda: not shell.alive(child.pid), bool, "the child exits", timeout=10)
        assert zombie and child.poll() is not None  # reaping only now: it was a zombie until here
    finally:
        child.kill()
        child.wait()


def test_a_pid_that_never_was_is_not_alive():
    assert not shell.alive(2**22 + 1)  # above the kernel's pid_max limit (4194304)

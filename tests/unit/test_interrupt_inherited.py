"""A task started with SIGINT ignored (the background of a script: POSIX shells ignore SIGINT
for asynchronous commands) still takes an interrupt and ends as "interrupted" (exit 130) after
cleaning up. Seen: a matrix lane launched so ran to its end after the matrix forwarded SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from calicolab.core.paths import ROOT

TASK = textwrap.dedent("""
    import sys, time
    from invoke.exceptions import Exit
    from calicolab.core.cli_args import friendly

    @friendly
    def task():
        try:
            print("ready", flush=True)
            time.sleep(60)
        finally:
            print("cleaned up", flush=True)

    try:
        task()
    except Exit as e:
        print(e.message, flush=True)
        sys.exit(e.code)
""")


def test_an_inherited_ignored_sigint_is_taken_back():
    proc = subprocess.Popen([sys.executable, "-c", TASK], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "cleaned up" in out and "interrupted" in out, out

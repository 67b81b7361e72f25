"""Read once, check many: a node's state read in one round trip, served to the checks, and
read again after them to prove it was still current.

The read-only pass takes one snapshot per node before its checks: every declared read
(e2e/state_reads.py) runs in one SSH command, one after another, each in its own `sh -c` under
the same sudo as a live command and cut off at a limit (a slower read is left to run live), its
exit code, stdout and stderr kept apart (base64, so no output can forge a frame). A check that
asks a node for a command the snapshot holds gets that answer; anything else, and any question a
test asks a second time (a poll waits for a change), runs live.

Why that cannot pass a check the live command fails: a read-only check is a function of the
answers it gets. After the pass, every answer a check consumed is read again, live, in one
round trip per node; the pass fails unless each equals what the check saw. So each verdict the
snapshot gave is the verdict the live commands give at the end of the pass. Equal is byte for
byte, except where the declaration names a comparison that holds every fact the check reads
(BIRD's SINCE clock has one second of play; `ss -xl` lists other processes' listeners). Commands whose
answer moves without the cluster changing (iptables counters, log sizes, clocks: iptables-save,
stat, docker info, docker logs) are never declared: they stay live.
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from calicolab.core.deadlines import deadline_factor
from calicolab.core.remote import CommandResult, RemoteCommandFailed

FRAME = "@@calicolab-snapshot"


@dataclass(frozen=True)
class Answer:
    rc: int
    stdout: str
    stderr: str

    def result(self, node: str, cmd: str) -> CommandResult:
        return CommandResult(node, cmd, self.rc, self.stdout, self.stderr)


# A read that needs longer than this is not one the snapshot serves: it stays live, where its
# check waits for it with its own timeout. Without a limit one hung read holds up the whole pass:
# with etcd's quorum lost, each calicoctl read hangs for its client's timeout (measured 60 s),
# and the snapshot asked three of them in turn before the pass started.
READ_LIMIT = 10.0


def script(commands: Sequence[str], limit: float = READ_LIMIT) -> str:
    """One shell script asking every command in turn, each for at most `limit` seconds (coreutils
    timeout, then KILL 2 s later); stdin closed, as a live command's is. A command cut off at its
    limit gets no frame."""
    lines = ['d=$(mktemp -d) || exit 1',
             f'ask() {{ timeout -k 2 {limit:g} sh -c "$2" </dev/null >"$d/o" 2>"$d/e"; rc=$?; '
             '[ "$rc" = 124 ] || [ "$rc" = 137 ] && return; '
             # An empty stream (most stderr) is framed without its two processes: under TCG
             # each costs about 30 ms of guest CPU, and a read-only pass asks about 64 reads.
             f'echo "{FRAME} $1 $rc"; [ -s "$d/o" ] && base64 "$d/o" | tr -d "\\n"; echo; '
             '[ -s "$d/e" ] && base64 "$d/e" | tr -d "\\n"; echo; }']
    lines += [f"ask {i} {shlex.quote(cmd)}" for i, cmd in enumerate(commands)]
    lines.append('rm -rf "$d"')
    return "\n".join(lines)


def parse(commands: Sequence[str], text: str) -> dict[str, Answer]:
    """The answers in the script's output; a command without its frame is left out (it stays live)."""
    lines = text.splitlines()
    answers: dict[str, Answer] = {}
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) == 3 and words[0] == FRAME and i + 2 < len(lines):
            index, rc = int(words[1]), int(words[2])
            out, err = (base64.b64decode(lines[i + 1]).decode(errors="replace"),
                        base64.b64decode(lines[i + 2]).decode(errors="replace"))
            answers[commands[index]] = Answer(rc, out, err)
    return answers


def read(node, commands: Sequence[str], limit: float | None = None) -> dict[str, Answer]:
    """Every command's answer, in one round trip to the node; one that needs longer than `limit`
    seconds (READ_LIMIT, times this run's deadline factor) is left out."""
    limit = READ_LIMIT * deadline_factor() if limit is None else limit
    unique = list(dict.fromkeys(commands))
    res = node.run(script(unique, limit), timeout=30 + (limit + 2) * len(unique))
    return parse(unique, res.stdout)


@dataclass(frozen=True)
class Snapshot:
    taken: float  # wall clock
    answers: dict[str, dict[str, Answer]]  # node -> command -> answer

    def save(self, path: Path) -> None:
        data = {"taken": self.taken,
                "answers": {n: {c: asdict(a) for c, a in cmds.items()} for n, cmds in self.answers.items()}}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        data = json.loads(path.read_text())
        return cls(data["taken"], {n: {c: Answer(**a) for c, a in cmds.items()}
                                   for n, cmds in data["answers"].items()})


def _each(names: Iterable[str], fn: Callable[[str], dict[str, Answer]]) -> dict[str, dict[str, Answer]]:
    names = list(names)
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return dict(zip(names, pool.map(fn, names), strict=True))


def take(nodes: Mapping[str, object], reads: Mapping[str, Sequence[str]]) -> Snapshot:
    """Each node's declared reads: one round trip per node, the nodes at once."""
    return Snapshot(time.time(), _each(reads, lambda name: read(nodes[name], reads[name])))


class Served:
    """Serves a node's run() from the snapshot where it can (patched in place, as the command
    log's recorder is); the consumed answers are kept with the tests that consumed them, for the
    re-read after the pass."""

    def __init__(self, node, answers: Mapping[str, Answer], current_test: Callable[[], str],
                 live_only: Callable[[str], bool] = lambda test: False) -> None:
        self.name = node.name
        self.answers = answers
        self.current_test = current_test
        self.live_only = live_only  # a test that acts on the cluster reads live
        self.asked: set[tuple[str, str]] = set()
        self.consumed: dict[str, set[str]] = {}  # command -> tests
        self.live = node.run
        node.run = self.run

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120) -> CommandResult:
        __tracebackhide__ = True
        test = self.current_test()
        again = (test, cmd) in self.asked  # asking again is waiting for a change: live
        self.asked.add((test, cmd))
        if again and test in self.consumed.get(cmd, ()):
            # A poll: the check decides on the live answers it waits for, not on the snapshot's.
            self.consumed[cmd].discard(test)
            if not self.consumed[cmd]:
                del self.consumed[cmd]
        if cmd not in self.answers or again or self.live_only(test):
            return self.live(cmd, check=check, timeout=timeout)
        self.consumed.setdefault(cmd, set()).add(test)
        result = self.answers[cmd].result(self.name, cmd)
        if check and not result.ok:
            raise RemoteCommandFailed(result)
        return result


def save_consumed(path: Path, served: Iterable[Served]) -> None:
    path.write_text(json.dumps({s.name: {cmd: sorted(tests) for cmd, tests in s.consumed.items()}
                                for s in served}))


def load_consumed(paths: Iterable[Path]) -> dict[str, dict[str, set[str]]]:
    """Every worker's consumed answers, merged: node -> command -> tests."""
    merged: dict[str, dict[str, set[str]]] = {}
    for path in paths:
        for node, cmds in json.loads(path.read_text()).items():
            for cmd, tests in cmds.items():
                merged.setdefault(node, {}).setdefault(cmd, set()).update(tests)
    return merged


@dataclass(frozen=True)
class Change:
    node: str
    cmd: str
    seen: Answer  # what the checks were given
    live: Answer | None  # None: the re-read did not answer for it
    tests: tuple[str, ...]

    def text(self) -> str:
        theirs = set(self.live.stdout.splitlines()) if self.live else set()
        mine = set(self.seen.stdout.splitlines())

        def short(a: Answer | None, other: set[str]) -> str:
            if a is None:
                return "no answer"
            moved = [" ".join(x.split()) for x in a.stdout.splitlines() if x not in other][:3]
            return f"exit {a.rc}" + (f", lines {moved}" if moved else "")
        return (f"{self.node}: `{self.cmd}` answered {short(self.seen, theirs)} in the snapshot, "
                f"{short(self.live, mine)} live after the pass (read by {', '.join(sorted(self.tests))})")


def _unchanged(seen: Answer, live: Answer | None, same_output: Callable[[str, str], bool] | None) -> bool:
    if live is None or same_output is None:
        return live == seen
    return live.rc == seen.rc and live.stderr == seen.stderr and same_output(seen.stdout, live.stdout)


def recheck(nodes: Mapping[str, object], snapshot: Snapshot,
            consumed: Mapping[str, Mapping[str, Iterable[str]]],
            same: Mapping[str, Callable[[str, str], bool]] | None = None) -> list[Change]:
    """Read every consumed command again, live (one round trip per node); the ones whose answer
    is not what the checks were given. Equal means byte for byte, except for a command `same`
    names: its exit code and stderr equal, its stdout saying the same by that comparison (an
    output that prints a clock it cannot read exactly twice)."""
    same = same or {}
    changes = []
    now = _each([n for n, cmds in consumed.items() if cmds], lambda name: read(nodes[name], list(consumed[name])))
    for name, live in now.items():
        for cmd, tests in consumed[name].items():
            seen = snapshot.answers[name][cmd]
            if not _unchanged(seen, live.get(cmd), same.get(cmd)):
                changes.append(Change(name, cmd, seen, live.get(cmd), tuple(tests)))
    return changes

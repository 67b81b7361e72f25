"""Small facts read from a live node: is a TCP port open, what does a URL answer, which
processes run in a container, which firewall rules drop a port. The named diagnoses
(calicolab/diagnose/diagnoses.py) are built from these; each probe is one short command with a
timeout, so a dead service costs seconds, not minutes.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Protocol

from calicolab.core.remote import CommandResult

PROBE_SECONDS = 3  # a blocked port or a hung service answers nothing: give up quickly


class NodeLike(Protocol):
    """What the probes need of a node (calicolab.remote.Node, or tests' FakeNode)."""

    name: str
    ip: str

    def run(self, cmd: str, *, check: bool = False, timeout: float = 120) -> CommandResult: ...


def ask(node: NodeLike, cmd: str, timeout: float = 120) -> CommandResult:
    """node.run for a probe: a command that is missing or cannot run raises CommandUnavailable,
    so no probe reads its silence as the component's answer (down, not listening, no rule)."""
    return node.run(cmd, timeout=timeout).ran()


# -- TCP ---------------------------------------------------------------------------------
OPEN, REFUSED, TIMEOUT, UNREACHABLE = "open", "refused", "timeout", "unreachable"


def tcp_port(node: NodeLike, ip: str, port: int, seconds: int = PROBE_SECONDS) -> str:
    """open | refused (nothing listens) | timeout (dropped on the way) | unreachable.

    bash's /dev/tcp needs no netcat (absent on minimal hosts); `timeout` exits 124 when a
    SYN gets no answer at all, which is what a DROP rule looks like from the outside."""
    probe = shlex.quote(f"exec 3<>/dev/tcp/{ip}/{port}")
    res = ask(node, f"timeout {seconds} bash -c {probe} 2>&1; echo tcp-rc=$?", timeout=seconds + 10)
    rc = tail_value(res.stdout, "tcp-rc")
    if rc in ("126", "127"):  # timeout or bash missing: their message went to stdout (2>&1)
        CommandResult(node.name, res.cmd, int(rc), "", res.stdout).ran()
    if rc == "0":
        return OPEN
    if rc == "124":
        return TIMEOUT
    text = res.stdout.lower()
    if "refused" in text:
        return REFUSED
    return UNREACHABLE if ("no route" in text or "unreachable" in text) else TIMEOUT


def connecting(node: NodeLike, ip: str, port: int) -> bool:
    """Does this node hold a connection to ip:port in SYN-SENT, i.e. is its SYN unanswered?
    Read from the kernel's socket table: watching BIRD's own attempts disturbs nothing,
    where a probe connection to BIRD's port would (BIRD takes it for its peer and then
    sees it close, and the session waits longer before its next try)."""
    res = ask(node, "ss -Htn state syn-sent")
    return any(line.split()[-1] == f"{ip}:{port}" for line in res.stdout.splitlines() if line.split())


def tail_value(text: str, key: str) -> str:
    """The value of the last `key=value` line (what a command's `-w`/`echo` trailer printed)."""
    for line in reversed(text.splitlines()):
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip()
    return ""


# -- HTTP (etcd's client port) -----------------------------------------------------------
@dataclass(frozen=True)
class HttpAnswer:
    status: int  # 0: no HTTP answer at all (refused, timed out, TLS failure)
    body: str

    @property
    def answered(self) -> bool:
        return self.status != 0


def http(node: NodeLike, url: str, curl_opts: str = "", method: str = "GET", data: str | None = None,
         seconds: int = PROBE_SECONDS) -> HttpAnswer:
    body = f" -d {shlex.quote(data)}" if data is not None else ""
    res = ask(node, f"curl -s -m {seconds} {curl_opts} -X {method}{body} -w '\\nhttp-status=%{{http_code}}' "
                   f"{shlex.quote(url)}", timeout=seconds + 10)
    status = tail_value(res.stdout, "http-status")
    text = res.stdout.rsplit("\nhttp-status=", 1)[0]
    return HttpAnswer(int(status) if status.isdigit() else 0, text)


# -- systemd, sysctl, journal --------------------------------------------------------------
def unit_state_command(unit: str) -> str:
    return f"systemctl is-active {shlex.quote(unit)}"


def unit_state(node: NodeLike, unit: str) -> str:
    """active | inactive | failed | activating | deactivating | unknown"""
    return ask(node, unit_state_command(unit)).stdout.strip() or "unknown"


def sysctl_command(key: str) -> str:
    return f"sysctl -n {shlex.quote(key)}"


def sysctl(node: NodeLike, key: str) -> str:
    return ask(node, sysctl_command(key)).stdout.strip()


def journal(node: NodeLike, unit: str, lines: int = 80) -> str:
    return ask(node, f"journalctl -u {shlex.quote(unit)} -n {lines} --no-pager -o cat 2>/dev/null").stdout


def config_lines(node: NodeLike, path: str) -> dict[str, str]:
    """KEY="value" lines of a shell-style config file such as /etc/etcd/etcd.conf."""
    text = ask(node, f"cat {shlex.quote(path)} 2>/dev/null").stdout
    values = {}
    for line in text.splitlines():
        key, sep, value = line.split("#", 1)[0].strip().partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


# -- containers and processes --------------------------------------------------------------
@dataclass(frozen=True)
class Process:
    pid: int
    age: int  # seconds since it started
    command: str


def container_processes(node: NodeLike, container: str) -> list[Process] | None:
    """Processes of a running container (None when it does not run), from the host's view:
    this works the same for real calico/node (runit) and for the double."""
    res = ask(node, f"docker top {shlex.quote(container)} -eo pid,etimes,comm 2>/dev/null")
    if not res.ok:
        return None
    found = []
    for line in res.stdout.splitlines()[1:]:
        words = line.split()
        if len(words) >= 3 and words[0].isdigit() and words[1].isdigit():
            found.append(Process(int(words[0]), int(words[1]), " ".join(words[2:])))
    return found


def container_clock(node: NodeLike, container: str) -> str | None:
    """The time of day inside a container (HH:MM:SS in its own time zone, which is the one BIRD
    prints its SINCE times in; a host's TZ may differ from calico/node's UTC); None when down."""
    # docker exec exits 126 also when the container is stopping: that is "down", not a missing tool.
    res = node.run(f"docker exec {shlex.quote(container)} date +%H:%M:%S 2>/dev/null")
    return res.stdout.strip() if res.ok else None


def container_running(node: NodeLike, container: str) -> bool:
    res = ask(node, f"docker inspect -f '{{{{.State.Running}}}}' {shlex.quote(container)} 2>/dev/null")
    return res.stdout.strip() == "true"


def socket_exists(node: NodeLike, path: str) -> bool:
    return ask(node, f"test -S {shlex.quote(path)}").ok


def sockets_listening(node: NodeLike, paths: list[str]) -> dict[str, bool]:
    """Which unix sockets have a listener (`ss -xl`): a killed plugin leaves its socket file behind."""
    listed = ask(node, "ss -xl 2>/dev/null").stdout.split()
    return {path: path in listed for path in paths}


def process_running(node: NodeLike, name: str) -> bool:
    """A process with exactly this name (comm), as calicoctl looks for `calico-felix`."""
    return ask(node, f"pgrep -x {shlex.quote(name)} >/dev/null").ok


# -- firewall ------------------------------------------------------------------------------
def rules_dropping_port(node: NodeLike, port: int) -> list[str]:
    """iptables rules (iptables-save syntax) that DROP or REJECT TCP traffic to or from port."""
    text = ask(node, "iptables-save 2>/dev/null").stdout
    wanted = re.compile(rf"--(?:dport|sport|dports|sports) (?:[\d:,]*,)?{port}(?:[,:][\d:,]*)?(?:\s|$)")
    return [line.strip() for line in text.splitlines()
            if line.startswith("-A ") and re.search(r"-j (DROP|REJECT)\b", line) and wanted.search(line)]


# -- reachability ----------------------------------------------------------------------------
def ping(node: NodeLike, ip: str, size: int | None = None, seconds: int = 2) -> bool:
    """One ICMP echo; with size, as a full-sized packet that must not be fragmented."""
    extra = f" -s {size} -M do" if size else ""
    return ask(node, f"ping -c 1 -W {seconds}{extra} {shlex.quote(ip)} >/dev/null 2>&1",
                    timeout=seconds + 10).ok


# -- BIRD ------------------------------------------------------------------------------------
BIRD_CTL = "/var/run/calico/bird.ctl"
_PEER_TYPES = {"Mesh": "node-to-node mesh", "Global": "global", "Node": "node specific"}


# calico/node's svlogd log of BIRD; the unit mounts /var/log/calico from the host, so it outlives
# the container and reads the same while calico-node restarts.
BIRD_LOG = "/var/log/calico/bird/current"


def log_mark(node: NodeLike, path: str = BIRD_LOG) -> int:
    """Lines in a log now (0 when it does not exist yet): pass it to log_since later."""
    res = ask(node, f"cat {shlex.quote(path)} 2>/dev/null | wc -l", timeout=30)
    return int(res.stdout.split()[0]) if res.ok and res.stdout.split() else 0


def log_since(node: NodeLike, mark: int, path: str = BIRD_LOG) -> str:
    """What the log gained after log_mark returned `mark`."""
    return ask(node, f"tail -n +{mark + 1} {shlex.quote(path)} 2>/dev/null", timeout=30).stdout


def bird_protocols(node: NodeLike, container: str = "calico-node") -> str | None:
    """BIRD's `show protocols` straight from its control socket inside calico-node (birdcl in
    calico/node, birdc in the double); None when BIRD cannot be asked."""
    question = (f"for c in birdcl birdc; do command -v $c >/dev/null && exec $c -s {BIRD_CTL} show protocols; "
                "done; exit 127")
    # Not ask(): docker exec exits 126 when the container is stopping, which is "BIRD cannot be asked".
    res = node.run(f"docker exec {shlex.quote(container)} sh -c {shlex.quote(question)}", timeout=30)
    return res.stdout if res.ok else None


def bird_bgp_peers(text: str) -> list[tuple[str, str, str, str, str]]:
    """BGP rows of `show protocols` as (peer address, peer type, state, since, info), the
    columns `calicoctl node status` shows: `Mesh_192_168_223_130 BGP master up 09:31:18 Established`."""
    peers = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 5 or words[1] != "BGP" or "_" not in words[0]:
            continue
        kind, _, address = words[0].partition("_")
        peers.append((address.replace("_", "."), _PEER_TYPES.get(kind, kind), words[3], words[4],
                      " ".join(words[5:])))
    return peers

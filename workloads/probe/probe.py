"""The disruption probe: runs in a workload container (PID 1), talks to one peer workload.

UDP: sends a numbered datagram to the peer every --interval seconds and logs every datagram it
receives from the peer, one line each:
    <incarnation> <seq> <sent monotonic ns> <sent realtime ns> <received monotonic ns>
The host reads gaps off the numbers (each missing one is one interval without traffic) and,
across a restart, off the sender's clocks. A receiver that is merely slow to be scheduled loses
nothing and shows no gap; a sender that stalls skips no number, so neither counts as outage.
A datagram sent more than one interval after it was due (a starved sender catching up) is also
logged by its sender, in late.log:
    <incarnation> <seq> <sent realtime ns> <late ns>
so that a catch-up burst lost to an outage is timed by when it was sent, not when it was due.

TCP: one long-lived connection to the peer's echo server, an 8-byte counter sent and echoed
every interval; the connection is only given up on an error or EOF (as Cilium's conn-disrupt
test does), then re-made and counted; a connection counts from its first echo. Lines:
`connect <real ns>`, `broken <real ns> <reason>`,
`stall <real ns of the last echo> <seconds>` for an echo later than STALL seconds.

The incarnation is a counter kept in --dir, so a container restarted by Docker numbers its
datagrams apart from its earlier life. SIGTERM flushes the logs and exits (PID 1 has no
default action for it). Python standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import struct
import sys
import threading
import time

PACKET = struct.Struct("!4sIIqq")  # magic, incarnation, seq, sent monotonic ns, sent realtime ns
MAGIC = b"CLP1"
ECHO = struct.Struct("!Q")
STALL = 0.2  # seconds: a TCP echo later than this is logged
FLUSH_EVERY = 0.1


class Log:
    """An append-only text file flushed every FLUSH_EVERY seconds and at exit."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", buffering=1 << 16)  # noqa: SIM115 -- closed at exit
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self._file.write(line + "\n")

    def flush(self) -> None:
        with self._lock:
            self._file.flush()


def next_incarnation(folder: str) -> int:
    path = os.path.join(folder, "incarnation")
    try:
        with open(path) as f:
            value = int(f.read().strip() or 0) + 1
    except (OSError, ValueError):
        value = 1
    with open(path, "w") as f:
        f.write(f"{value}\n")
    return value


def udp_sender(sock: socket.socket, peer: tuple[str, int], incarnation: int, interval: float,
               stop: threading.Event, late_log: Log | None = None) -> None:
    seq = 0
    due = time.monotonic()
    while not stop.is_set():
        mono, real = time.monotonic_ns(), time.time_ns()
        # No route yet (the workload's interface is being set up): the number is skipped.
        with contextlib.suppress(OSError):
            sock.sendto(PACKET.pack(MAGIC, incarnation, seq, mono, real), peer)
        late = mono / 1e9 - due
        if late_log is not None and late > interval:
            late_log.write(f"{incarnation} {seq} {real} {int(late * 1e9)}")
        seq += 1
        due += interval
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0:  # the process was stopped or starved: carry on from now, not in a burst
            due = time.monotonic()


def udp_receiver(sock: socket.socket, log: Log, stop: threading.Event) -> None:
    sock.settimeout(0.5)
    while not stop.is_set():
        try:
            data, _ = sock.recvfrom(256)
        except TimeoutError:
            continue
        except OSError:
            continue
        got = time.monotonic_ns()
        if len(data) != PACKET.size:
            continue
        magic, inc, seq, mono, real = PACKET.unpack(data)
        if magic == MAGIC:
            log.write(f"{inc} {seq} {mono} {real} {got}")


def tcp_server(port: int, bind: str, stop: threading.Event) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((bind, port))
    srv.listen(8)
    srv.settimeout(0.5)
    while not stop.is_set():
        try:
            conn, _ = srv.accept()
        except OSError:
            continue
        threading.Thread(target=_echo, args=(conn, stop), daemon=True).start()


def _echo(conn: socket.socket, stop: threading.Event) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while not stop.is_set():
            try:
                data = conn.recv(64)
            except OSError:
                return
            if not data:
                return
            try:
                conn.sendall(data)
            except OSError:
                return


def _recv_exact(conn: socket.socket, size: int, stop: threading.Event) -> bytes:
    buf = b""
    while len(buf) < size:
        if stop.is_set():
            raise InterruptedError("stopping")
        try:
            chunk = conn.recv(size - len(buf))
        except TimeoutError:
            continue  # TCP retransmits on its own: a quiet connection is not a broken one
        if not chunk:
            raise ConnectionError("EOF")
        buf += chunk
    return buf


def tcp_client(peer: tuple[str, int], interval: float, log: Log, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            conn = socket.create_connection(peer, timeout=1.0)
        except OSError:
            time.sleep(interval)
            continue
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(0.25)
        # A connection counts once it carried an echo: a peer that is going away may still
        # complete a handshake (its listening socket outlives its process by a moment) and reset
        # it at once, which is a failed attempt, not a connection made and lost.
        counter, last_real, last, up = 0, time.time_ns(), time.monotonic(), False
        try:
            while not stop.is_set():
                conn.sendall(ECHO.pack(counter))
                if ECHO.unpack(_recv_exact(conn, ECHO.size, stop))[0] != counter:
                    raise ConnectionError("echo out of order")
                now = time.monotonic()
                if not up:
                    log.write(f"connect {time.time_ns()}")
                    up = True
                elif now - last > STALL:
                    log.write(f"stall {last_real} {now - last:.3f}")
                counter, last, last_real = counter + 1, now, time.time_ns()
                time.sleep(max(0.0, interval - (time.monotonic() - now)))
        except InterruptedError:
            return
        except (OSError, ConnectionError) as err:
            if up:
                log.write(f"broken {time.time_ns()} {err.__class__.__name__}")
            else:
                time.sleep(interval)
        finally:
            conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer", required=True, help="the peer workload's IPv4")
    p.add_argument("--udp-port", type=int, default=7001)
    p.add_argument("--tcp-port", type=int, default=7002)
    p.add_argument("--peer-udp-port", type=int, default=0, help="default: --udp-port")
    p.add_argument("--peer-tcp-port", type=int, default=0, help="default: --tcp-port")
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--dir", default="/probe")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--rcvbuf", type=int, default=0, help="UDP receive buffer in bytes (default: the system's)")
    args = p.parse_args(argv)
    os.makedirs(args.dir, exist_ok=True)
    incarnation = next_incarnation(args.dir)
    udp_log, tcp_log = Log(os.path.join(args.dir, "udp.log")), Log(os.path.join(args.dir, "tcp.log"))
    late_log = Log(os.path.join(args.dir, "late.log"))
    logs = (udp_log, tcp_log, late_log)
    stop = threading.Event()

    def finish(*_: object) -> None:
        stop.set()
        for log in logs:
            log.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if args.rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
    sock.bind((args.bind, args.udp_port))
    peer_udp = (args.peer, args.peer_udp_port or args.udp_port)
    peer_tcp = (args.peer, args.peer_tcp_port or args.tcp_port)
    tcp_log.write(f"start {time.time_ns()} {incarnation}")
    threads = [threading.Thread(target=udp_receiver, args=(sock, udp_log, stop), daemon=True),
               threading.Thread(target=tcp_server, args=(args.tcp_port, args.bind, stop), daemon=True),
               threading.Thread(target=udp_sender, args=(sock, peer_udp, incarnation, args.interval, stop, late_log),
                                daemon=True),
               threading.Thread(target=tcp_client, args=(peer_tcp, args.interval, tcp_log, stop), daemon=True)]
    for t in threads:
        t.start()
    while True:
        time.sleep(FLUSH_EVERY)
        for log in logs:
            log.flush()


if __name__ == "__main__":
    sys.exit(main())

"""Hostile clients for tests and measurements: floods of idle, slow (slowloris) and spooling sockets.

Each kind opens many raw TCP connections to one node on 127.0.0.1 and holds them until closed:

- idle: connect and send nothing;
- slowloris: send a request line, then one header byte at a time (`dribble()`), never finishing;
- spooling: announce a body and send more of it than waitress keeps in memory (512 KiB), so the
  node spools each to a temporary file, a second descriptor per connection; then stall.

Plus `health_within`, the question every test and measurement asks meanwhile: does the node still
answer, and how fast. Nothing here sleeps to wait for the node; sockets have timeouts.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import time
from types import TracebackType

import requests

SPOOL_BYTES = 600 * 1024  # over waitress's inbuf_overflow (512 KiB): the body goes to a temp file
CONNECT_TIMEOUT_S = 5.0


def allow_open_files(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE toward `wanted` (at most the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


class Flood:
    """Connections of one kind to 127.0.0.1:port; a context manager that closes them all."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sockets: list[socket.socket] = []
        self.refused = 0  # connects that failed or timed out (the node's backlog was full)
        self.closed_by_node = 0  # sockets the node closed (seen by `dribble` or `count_closed`)

    def __enter__(self) -> Flood:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self.sockets.clear()

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=CONNECT_TIMEOUT_S)
        except OSError:
            self.refused += 1
            return None
        self.sockets.append(sock)
        return sock

    def open_idle(self, count: int) -> Flood:
        for _ in range(count):
            self._connect()
        return self

    def open_slowloris(self, count: int) -> Flood:
        for _ in range(count):
            sock = self._connect()
            if sock is not None:
                self._send(sock, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        return self

    def open_spooling(self, count: int, body_bytes: int = SPOOL_BYTES, declared: int = 1024 * 1024) -> Flood:
        """Each connection announces `declared` bytes of body and sends `body_bytes` of it."""
        chunk = b"x" * body_bytes
        head = f"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n".encode()
        for _ in range(count):
            sock = self._connect()
            if sock is not None:
                self._send(sock, head + chunk)
        return self

    def _send(self, sock: socket.socket, data: bytes) -> bool:
        try:
            sock.sendall(data)
        except OSError:
            self.closed_by_node += 1
            self.sockets.remove(sock)
            sock.close()
            return False
        return True

    def dribble(self) -> int:
        """Send one more header byte on every open socket; return how many are still open."""
        for sock in list(self.sockets):
            self._send(sock, b"a")
        return len(self.sockets)

    def count_closed(self) -> int:
        """Drop (and count) the sockets the node has closed: readable with EOF or an answer."""
        for sock in list(self.sockets):
            sock.setblocking(False)
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            finally:
                with contextlib.suppress(OSError):
                    sock.setblocking(True)
            del data
            self.closed_by_node += 1
            self.sockets.remove(sock)
            sock.close()
        return self.closed_by_node


def health_within(url: str, timeout_s: float) -> float | None:
    """Seconds GET url/health took to answer 200 (a fresh connection), or None if it did not
    answer within timeout_s."""
    started = time.monotonic()
    try:
        answer = requests.get(url + "/health", timeout=timeout_s)
    except requests.RequestException:
        return None
    return time.monotonic() - started if answer.status_code == 200 else None


def append_within(url: str, timeout_s: float, message: str = "probe") -> float | None:
    """Seconds a w=1 append took to be answered 201, or None if it was not within timeout_s."""
    started = time.monotonic()
    try:
        answer = requests.post(url + "/messages", json={"message": message, "w": 1}, timeout=timeout_s)
    except requests.RequestException:
        return None
    return time.monotonic() - started if answer.status_code == 201 else None


def open_descriptors(pid: int) -> int:
    """How many descriptors process `pid` holds (Linux /proc)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def _status_bytes(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"no {field} for pid {pid}")


def rss_bytes(pid: int) -> int:
    """The process's resident set size now (VmRSS in /proc/PID/status)."""
    return _status_bytes(pid, "VmRSS")


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size since it started or `reset_peak_rss` (VmHWM)."""
    return _status_bytes(pid, "VmHWM")


def reset_peak_rss(pid: int) -> None:
    """Make the peak start again from the current RSS (Linux >= 4.0: "5" > /proc/PID/clear_refs)."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")

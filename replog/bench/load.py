"""A cheap load generator: worker processes of threads on keep-alive `http.client` connections.

Several processes so the generator itself is not GIL-bound; its CPU time is reported so a
client-bound result shows as such.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class LoadResult:
    requests: int
    messages: int
    errors: int
    wall_s: float
    latencies_ms: list[float]
    client_cpu_s: float

    @property
    def per_s(self) -> float:
        return self.messages / self.wall_s if self.wall_s else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


class _KeepAlive:
    """A bare HTTP/1.1 keep-alive POST client: a fraction of http.client's CPU per request, so the
    load generator is not what limits the numbers."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._head = f"POST /messages HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        self._sock: socket.socket | None = None
        self._reader: Any = None

    def post(self, body: bytes) -> int:
        if self._sock is None:
            self._sock = socket.create_connection(self._address, timeout=60)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._reader = self._sock.makefile("rb")
        self._sock.sendall(f"{self._head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status = int(self._reader.readline()[9:12])
        length, close = 0, False
        while (line := self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"connection" and value.strip().lower() == b"close":
                close = True
        self._reader.read(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self._sock is not None:
            self._reader.close()
            self._sock.close()
            self._sock = None


def _client_thread(
    url: str,
    w: int | str,
    batch: int,
    stop_at: float,
    count: int,
    tag: str,
    out: list[tuple[float, int, int]],
    keyed: bool = False,
) -> None:
    client = _KeepAlive(url)
    payload = "x" * 90
    w_json = json.dumps(w)  # 2, or "majority" quoted
    sent = 0
    while (count and sent < count) or (not count and time.monotonic() < stop_at):
        sent += 1
        if batch > 1:
            raw = json.dumps({"messages": [f"{tag}-{sent}-{i}-{payload}" for i in range(batch)], "w": w})
        elif keyed:  # an idempotency key per message (issue 13): what a retrying client sends
            raw = f'{{"message":"{tag}-{sent}-{payload}","w":{w_json},"id":"{tag}-{sent}"}}'
        else:
            raw = f'{{"message":"{tag}-{sent}-{payload}","w":{w_json}}}'
        started = time.perf_counter()
        try:
            ok = client.post(raw.encode()) == 201
        except (OSError, ValueError):
            client.close()
            ok = False
        out.append(((time.perf_counter() - started) * 1000, batch if ok else 0, 0 if ok else 1))
    client.close()


def _process(
    url: str,
    w: int | str,
    batch: int,
    threads: int,
    duration_s: float,
    count: int,
    tag: str,
    start_at: float,
    queue: multiprocessing.Queue[tuple[list[tuple[float, int, int]], float, float]],
    keyed: bool = False,
) -> None:
    while time.monotonic() < start_at:
        time.sleep(0.001)
    stop_at = start_at + duration_s
    results: list[list[tuple[float, int, int]]] = [[] for _ in range(threads)]
    workers = [
        threading.Thread(target=_client_thread, args=(url, w, batch, stop_at, count, f"{tag}{t}", out, keyed))
        for t, out in enumerate(results)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - start_at
    usage = resource.getrusage(resource.RUSAGE_SELF)
    queue.put(([r for out in results for r in out], usage.ru_utime + usage.ru_stime, elapsed))


def run_load(
    url: str,
    *,
    clients: int,
    w: int | str,
    duration_s: float = 0.0,
    count_per_client: int = 0,
    batch: int = 1,
    processes: int | None = None,
    tag: str = "b",
    keyed: bool = False,
) -> LoadResult:
    """`clients` concurrent connections for duration_s (or count_per_client requests each)."""
    processes = processes or min(clients, max(1, (os.cpu_count() or 2)))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    start_at = time.monotonic() + 0.3
    per_process = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    procs = [
        ctx.Process(
            target=_process,
            args=(url, w, batch, n, duration_s, count_per_client, f"{tag}p{i}t", start_at, queue, keyed),
        )
        for i, n in enumerate(per_process)
        if n
    ]
    for proc in procs:
        proc.start()
    gathered = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    samples = [s for rows, _, _ in gathered for s in rows]
    return LoadResult(
        requests=len(samples),
        messages=sum(s[1] for s in samples),
        errors=sum(s[2] for s in samples),
        wall_s=max(elapsed for _, _, elapsed in gathered),
        latencies_ms=[s[0] for s in samples if s[2] == 0],
        client_cpu_s=sum(cpu for _, cpu, _ in gathered),
    )

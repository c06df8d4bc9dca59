"""Followers and idempotency keys, measured (issue 13): `python bench/follow_bench.py [--out F]`.

On a durable local cluster (master + 2 secondaries, `--fsync always`), in one run:

1. append throughput (16 keep-alive clients, w=2, from worker processes) with no followers, then
   with 200 `GET /stream` followers on the master, alternated (A B A B) so drift on this shared
   machine hits both; the ratio is followers/none. The followers read in a separate process (one
   selector loop, 200 sockets) and must each receive every entry appended while they follow;
2. the delay from an append's 201 to its delivery on a follower (`/stream`), on the master and on
   a secondary (one append at a time, the next after both deliveries; 200 followers connected);
3. keyed against unkeyed append throughput (every message with its own `id`), alternated;
4. the dedup window's rebuild at start for a log of 100,000 keyed entries (DiskStore.open with the
   default window, against the same open with an empty window).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from replog.bench.load import LoadResult, run_load
from replog.bench.machine import process_cpu_s
from replog.client import ReplogClient
from replog.core.dedup import WindowPolicy
from replog.core.entry import NewEntry
from replog.storage.disk import DiskStore
from replog.testing.cluster import LocalCluster

CLIENTS, W, PHASE_S = 16, 2, 8.0


def _connect_stream(url: str, from_seq: int) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=30)
    sock.sendall(f"GET /stream?from_seq={from_seq} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
    return sock


def _followers_process(url: str, count: int, from_seq: int, ready: Any, stop: Any, out: Any) -> None:
    """One process, `count` streams, one selector loop: counts the events each stream receives."""
    selector = selectors.DefaultSelector()
    events = {}
    tails = {}
    for _ in range(count):
        sock = _connect_stream(url, from_seq)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        events[sock] = 0
        tails[sock] = b""
    ready.set()
    while not stop.is_set():
        for key, _ in selector.select(timeout=0.2):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(256 * 1024)
            except BlockingIOError:
                continue
            if not data:
                selector.unregister(sock)
                continue
            joined = tails[sock] + data
            events[sock] += joined.count(b"\nid: ") + (1 if joined.startswith(b"id: ") else 0)
            tails[sock] = joined[-6:]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.put((sorted(events.values()), usage.ru_utime + usage.ru_stime))
    for sock in events:
        sock.close()


class Followers:
    """200 stream followers in a child process, from the master's next seq on."""

    def __init__(self, url: str, count: int, from_seq: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.ready, self.stop, self.out = ctx.Event(), ctx.Event(), ctx.Queue()
        self.proc = ctx.Process(
            target=_followers_process, args=(url, count, from_seq, self.ready, self.stop, self.out)
        )
        self.proc.start()
        if not self.ready.wait(60):
            raise RuntimeError("followers did not connect")

    def close(self) -> list[int]:
        """Each follower's event count, lowest first; `cpu_s` is the reader process's CPU time."""
        self.stop.set()
        counts, self.cpu_s = self.out.get(timeout=60)
        self.proc.join(30)
        return list(counts)


def _load(url: str, keyed: bool = False) -> LoadResult:
    return run_load(url, clients=CLIENTS, w=W, duration_s=PHASE_S, processes=2, keyed=keyed)


def _wait_no_followers(client: ReplogClient) -> None:
    deadline = time.monotonic() + 30
    while client.health()["followers"] and time.monotonic() < deadline:
        time.sleep(0.1)


def _last_seq(client: ReplogClient) -> int:
    return int(client.health()["last_seq"])


def throughput_with_followers(cluster: LocalCluster, client: ReplogClient) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for phase in ("none", "200 followers", "none", "200 followers"):
        followers = None
        if phase != "none":
            followers = Followers(cluster.master.url, 200, _last_seq(client) + 1)
            time.sleep(0.5)  # let every stream start before the load
        first = _last_seq(client) + 1
        cpu_before = process_cpu_s(cluster.master.pid or 0)
        result = _load(cluster.master.url)
        master_cpu_s = process_cpu_s(cluster.master.pid or 0) - cpu_before
        row: dict[str, Any] = {
            "phase": phase, "appends_per_s": round(result.per_s, 1),
            "p50_ms": round(result.percentile(50), 2), "p99_ms": round(result.percentile(99), 2),
            "errors": result.errors, "master_cpu_share": round(master_cpu_s / result.wall_s, 2),
            "loadgen_cpu_s": round(result.client_cpu_s, 2),
        }  # fmt: skip
        if followers is not None:
            last = _last_seq(client)
            time.sleep(1.0)  # let the followers read the tail of the load
            counts = followers.close()
            _wait_no_followers(client)
            row["appended"] = last - first + 1
            row["events_per_follower_min_max"] = [counts[0], counts[-1]]
            row["followers_reader_cpu_s"] = round(followers.cpu_s, 2)  # on the same 2 cores
        rows.append(row)
        print(json.dumps(row), flush=True)
    none = [r["appends_per_s"] for r in rows if r["phase"] == "none"]
    some = [r["appends_per_s"] for r in rows if r["phase"] != "none"]
    return {"rows": rows, "ratio_followers_to_none": round(statistics.mean(some) / statistics.mean(none), 3)}


class Probe:
    """One stream follower on a thread: the time each seq arrived."""

    def __init__(self, url: str, from_seq: int) -> None:
        self.arrived: dict[int, float] = {}
        self.cond = threading.Condition()
        self._sock = _connect_stream(url, from_seq)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buffer = b""
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            now = time.perf_counter()
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            with self.cond:
                for line in lines:
                    if line.startswith(b"id: "):
                        self.arrived[int(line[4:])] = now
                self.cond.notify_all()

    def wait(self, seq: int, timeout_s: float = 10.0) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: seq in self.arrived, timeout_s):
                raise TimeoutError(f"seq {seq} not delivered")
            return self.arrived[seq]

    def close(self) -> None:
        self._sock.close()


def delivery_delay(cluster: LocalCluster, client: ReplogClient, count: int = 500) -> dict[str, Any]:
    start = _last_seq(client) + 1
    followers = Followers(cluster.master.url, 200, start)
    on_master = Probe(cluster.master.url, start)
    on_secondary = Probe(cluster.secondaries["s1"].url, start)
    delays: dict[str, list[float]] = {"master": [], "secondary": []}
    try:
        for i in range(count):
            body = client.append(f"probe-{i}", 1)
            acked = time.perf_counter()
            seq = int(body["seq"])
            delays["master"].append((on_master.wait(seq) - acked) * 1000)
            delays["secondary"].append((on_secondary.wait(seq) - acked) * 1000)
    finally:
        on_master.close()
        on_secondary.close()
        followers.close()
        _wait_no_followers(client)

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"median_ms": round(statistics.median(ordered), 3),
                "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
                "max_ms": round(ordered[-1], 3)}

    return {"appends": count, "w": 1, "followers_connected": 202,
            "master": summary(delays["master"]), "secondary": summary(delays["secondary"])}


def keyed_vs_unkeyed(cluster: LocalCluster) -> dict[str, Any]:
    rows = []
    for keyed in (False, True, False, True):
        result = _load(cluster.master.url, keyed=keyed)
        rows.append({"keyed": keyed, "appends_per_s": round(result.per_s, 1), "errors": result.errors,
                     "p50_ms": round(result.percentile(50), 2)})
        print(json.dumps(rows[-1]), flush=True)
    plain = statistics.mean(r["appends_per_s"] for r in rows if not r["keyed"])
    keyed_mean = statistics.mean(r["appends_per_s"] for r in rows if r["keyed"])
    return {"rows": rows, "ratio_keyed_to_unkeyed": round(keyed_mean / plain, 3)}


def rebuild_time(root: Path, count: int = 100_000) -> dict[str, Any]:
    store = DiskStore.open(root / "keyed", new_log_id="bench")
    for first in range(0, count, 1000):
        batch = [NewEntry(f"message {i} " + "x" * 80, f"key-{i}") for i in range(first, first + 1000)]
        store.append_unique(batch)
    deadline = time.monotonic() + 60
    while store.stored_seq < count and time.monotonic() < deadline:
        time.sleep(0.01)
    store.close()
    timings: dict[str, list[float]] = {"with_window": [], "empty_window": []}
    for _ in range(3):
        for name, policy in (("with_window", WindowPolicy()), ("empty_window", WindowPolicy(max_keys=0))):
            started = time.perf_counter()
            opened = DiskStore.open(root / "keyed", dedup=policy)
            timings[name].append(time.perf_counter() - started)
            keys = opened.keys_held
            opened.close()
            if name == "with_window":
                assert keys == count, keys
    best = {k: min(v) for k, v in timings.items()}
    return {"entries": count, "open_s_with_window": round(best["with_window"], 3),
            "open_s_empty_window": round(best["empty_window"], 3),
            "rebuild_s": round(best["with_window"] - best["empty_window"], 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here")
    parser.add_argument("--parts", default="rebuild,followers,delivery,keys", help="which measures to run")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "cpus": os.cpu_count(), "clients": CLIENTS, "w": W, "phase_s": PHASE_S}
    with tempfile.TemporaryDirectory(prefix="follow-bench-") as tmp:
        root = Path(tmp)
        if "rebuild" in parts:
            results["rebuild"] = rebuild_time(root)
            print(json.dumps(results["rebuild"]), flush=True)
        # keep-alives every second: a closed follower's slot is freed by the next write at the latest
        cluster = LocalCluster(root / "cluster", common_argv=("--log-level=WARNING", "--follow-keepalive=1"),
                               master_argv=("--heartbeat-interval=0.2",), log_dir=root / "logs")
        cluster.up()
        client = ReplogClient(cluster.master.url, request_timeout_s=60)
        try:
            if "followers" in parts:
                results["followers"] = throughput_with_followers(cluster, client)
            if "delivery" in parts:
                results["delivery"] = delivery_delay(cluster, client)
                print(json.dumps(results["delivery"]), flush=True)
            if "keys" in parts:
                results["keys"] = keyed_vs_unkeyed(cluster)
        finally:
            client.close()
            cluster.stop()
    text = json.dumps(results, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

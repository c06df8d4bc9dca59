"""Micro-benchmark of DiskStore alone (no HTTP): append rate per fsync policy, RSS and page reads at 1M.

    PYTHONPATH=. python bench/storage_bench.py [--seconds 2] [--count 1000000] [--batch 100] [--dir DIR]

Each appending thread behaves like a w=1 client: append one message, then wait until the store
reports it stored (after fsync, under ALWAYS). Not a test: it prints numbers for the README.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from replog.storage.disk import DiskStore, FsyncPolicy

MESSAGE = "x" * 100


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def append_rate(data_dir: Path, policy: FsyncPolicy, threads: int, seconds: float) -> tuple[float, int]:
    """Appends/s with `threads` clients each waiting for its own entry to be stored; and fsyncs made."""
    fsyncs = 0

    def counting_sync(fd: int) -> None:
        nonlocal fsyncs
        os.fdatasync(fd)
        fsyncs += 1

    store = DiskStore.open(data_dir, fsync=policy, new_log_id="bench", sync_fd=counting_sync)
    stored = threading.Condition()

    def on_stored(seq: int) -> None:
        with stored:
            stored.notify_all()

    store.set_listener(on_stored)
    done = [0] * threads
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        while time.monotonic() < stop_at:
            seq = store.append([MESSAGE])[0].seq
            with stored:
                stored.wait_for(lambda: store.stored_seq >= seq)  # noqa: B023 -- called before seq changes
            done[n] += 1

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    start = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - start
    store.close()
    return sum(done) / elapsed, fsyncs


def million(data_dir: Path, count: int, batch: int) -> None:
    base_rss, _ = rss_mb()
    store = DiskStore.open(data_dir, new_log_id="bench")
    start = time.monotonic()
    for _ in range(count // batch):
        store.append([MESSAGE] * batch)
    while store.stored_seq < count:
        time.sleep(0.01)
    took_s = time.monotonic() - start
    print(f"appended {count:,} x {len(MESSAGE)}-byte messages, {batch} per append: {took_s:.1f} s")
    rss, peak = rss_mb()
    size_mb = (data_dir / "entries.dat").stat().st_size / 1e6
    print(f"RSS {rss:.0f} MB (peak {peak:.0f} MB; {base_rss:.0f} MB before opening); file {size_mb:.0f} MB")
    print(f"cache of recent entries: {store.cached_bytes / 1e6:.0f} MB (bound: cache_bytes, default 64 MiB)")
    for label, first in (("cached tail", count - 1_500), ("on disk (page cache)", count - 200_000)):
        t0 = time.perf_counter()
        page = store.read(first, 1_000)
        took_ms = (time.perf_counter() - t0) * 1e3
        assert len(page) == 1_000 and page[0].seq == first
        print(f"read 1,000 entries from seq {first:,} ({label}): {took_ms:.2f} ms")
    store.close()
    t0 = time.perf_counter()
    store = DiskStore.open(data_dir)
    took_s = time.perf_counter() - t0
    print(
        f"reopen with recovery scan of {count:,} records: {took_s:.2f} s; RSS {rss_mb()[0]:.0f} MB; "
        f"cache {store.cached_bytes / 1e6:.0f} MB"
    )
    with open(data_dir / "entries.dat", "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)  # evict only this file's pages
    t0 = time.perf_counter()
    store.read(count - 200_000, 1_000)
    print(
        f"read 1,000 entries from seq {count - 200_000:,} (evicted from page cache): "
        f"{(time.perf_counter() - t0) * 1e3:.2f} ms"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per append-rate run")
    parser.add_argument("--count", type=int, default=1_000_000, help="entries for the RSS/read test")
    parser.add_argument("--batch", type=int, default=100, help="messages per append in the 1M fill")
    parser.add_argument("--dir", type=Path, default=None, help="where to put data (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="replog-bench-") as tmp:
        root = Path(tmp)
        print(f"{'policy':<8} {'threads':>7} {'appends/s':>10} {'fsyncs':>8} {'appends/fsync':>14}")
        for policy in (FsyncPolicy.ALWAYS, FsyncPolicy.NEVER):
            for threads in (1, 16):
                rate, fsyncs = append_rate(root / f"{policy.value}-{threads}", policy, threads, args.seconds)
                per = f"{rate * args.seconds / fsyncs:.1f}" if fsyncs else "-"
                print(f"{policy.value:<8} {threads:>7} {rate:>10,.0f} {fsyncs:>8,} {per:>14}")
        if args.count:
            million(root / "million", args.count, args.batch)


if __name__ == "__main__":
    main()

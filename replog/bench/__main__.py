"""`python -m replog.bench`: start a durable local cluster (fsync always) and measure it.

Prints a table and writes JSON. Scenarios: sequential appends per w; 16 and 64 concurrent clients
per w; bulk appends of 100; catch-up of a secondary that missed 100,000 messages; the master's RSS
after 1,000,000 messages and the time of a page of 1,000 near the end. Best of --repeat runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from replog.bench.load import LoadResult, run_load
from replog.bench.machine import CpuTimes, fdatasync_us, process_cpu_s
from replog.client import ReplogClient, poll_until
from replog.testing.cluster import LocalCluster


class BenchCluster:
    """A durable local cluster with quiet logs, optionally pinned (see `pinned`), and what the
    benchmark reads of it: CPU time per node and the master's RSS."""

    def __init__(self, root: Path, fsync: str, pin: bool) -> None:
        self.cluster = LocalCluster(
            root,
            common_argv=("--log-level=WARNING", f"--fsync={fsync}"),
            master_argv=("--heartbeat-interval=0.2",),
            log_dir=root,
            pin=pin,
        )
        self.master = self.cluster.master
        self.secondaries = list(self.cluster.secondaries.values())
        self.client = ReplogClient(self.master.url, request_timeout_s=120)

    def start(self) -> None:
        self.cluster.start()
        self.cluster.wait_writable(30)

    def stop(self) -> None:
        self.cluster.stop()

    def cpu_s(self) -> list[float]:
        """CPU seconds used so far by the master, then each secondary."""
        return [process_cpu_s(node.pid or 0) for node in (self.master, *self.secondaries)]

    def load(self, **kwargs: Any) -> tuple[LoadResult, list[float]]:
        """Run a load; also return each node's CPU microseconds per request during it."""
        before = self.cpu_s()
        result = run_load(self.master.url, **kwargs)
        spent = [after - start for after, start in zip(self.cpu_s(), before, strict=True)]
        return result, [s * 1e6 / max(1, result.requests) for s in spent]

    def master_rss_mb(self) -> float:
        pid = self.master.pid
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def _row(name: str, r: LoadResult, w: int, node_cpu_us: list[float]) -> dict[str, Any]:
    return {
        "scenario": f"{name} w={w}",
        "per_s": round(r.per_s),
        "p50_ms": round(r.percentile(50), 2),
        "p99_ms": round(r.percentile(99), 2),
        "requests": r.requests,
        "errors": r.errors,
        "client_cpu_pct": round(100 * r.client_cpu_s / r.wall_s) if r.wall_s else 0,
        "master_cpu_us_per_request": round(node_cpu_us[0]),
        "secondary_cpu_us_per_request": round(sum(node_cpu_us[1:]) / len(node_cpu_us[1:])),
    }


def run_once(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    cluster = BenchCluster(root, args.fsync, args.pin)
    cluster.start()
    rows: list[dict[str, Any]] = []
    try:
        wanted = set(args.scenarios.split(","))
        for clients in (1, 16, 64):
            if ("sequential" if clients == 1 else "concurrent") not in wanted:
                continue
            for w in (1, 2, 3):
                result, cpu = cluster.load(clients=clients, w=w, duration_s=args.seconds)
                rows.append(_row("sequential" if clients == 1 else f"{clients} clients", result, w, cpu))
        if "bulk" in wanted:
            bulk, cpu = cluster.load(clients=8, w=3, batch=100, duration_s=args.seconds)
            rows.append(_row("bulk 100/request (msgs/s)", bulk, 3, cpu))
        if "catchup" in wanted:
            rows.append(catch_up(cluster, args.catch_up))
        if "memory" in wanted:
            rows.append(memory_and_paging(cluster, args.total))
    finally:
        cluster.stop()
    return rows


def catch_up(cluster: BenchCluster, count: int) -> dict[str, Any]:
    """Stop s2, append `count` messages, restart it; seconds until it holds them all."""
    s2 = cluster.secondaries[1]
    s2.stop()
    _bulk_fill(cluster.client, count, w=2)
    last = cluster.client.health()["last_seq"]
    started = time.monotonic()
    s2.start()
    probe = ReplogClient(s2.url, request_timeout_s=5)
    poll_until(lambda: probe.health()["acked_seq"] >= last, 120, 0.01, "catch-up")
    return {"scenario": f"catch-up of {count:,} messages", "seconds": round(time.monotonic() - started, 2)}


def memory_and_paging(cluster: BenchCluster, total: int) -> dict[str, Any]:
    """Fill the log to `total` messages, then the master's RSS and a page of 1,000 near the end."""
    have = cluster.client.health()["last_seq"]
    _bulk_fill(cluster.client, max(0, total - have), w=1)
    last = cluster.client.health()["last_seq"]
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        page = cluster.client.messages(offset=last - 1500, limit=1000)
        timings.append((time.perf_counter() - started) * 1000)
        assert len(page) == 1000
    return {
        "scenario": f"master RSS at {last:,} messages",
        "rss_mb": round(cluster.master_rss_mb(), 1),
        "page_1000_ms": round(min(timings), 2),
    }


def _bulk_fill(client: ReplogClient, count: int, w: int) -> None:
    chunk = 5000
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        client.append_many([f"fill-{start + i}-{'y' * 80}" for i in range(n)], w=w)


def best(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per scenario, the run with the best headline figure."""
    chosen = []
    for rows in zip(*runs, strict=True):
        if "per_s" in rows[0]:
            chosen.append(max(rows, key=lambda r: r["per_s"]))
        elif "seconds" in rows[0]:
            chosen.append(min(rows, key=lambda r: r["seconds"]))
        else:
            chosen.append(min(rows, key=lambda r: r["page_1000_ms"]))
    return chosen


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'scenario':34} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'client CPU':>10} "
        f"{'master us/req':>13} {'second. us/req':>14}  other"
    )
    for r in rows:
        if "per_s" in r:
            print(
                f"{r['scenario']:34} {r['per_s']:>8,} {r['p50_ms']:>8} {r['p99_ms']:>8} "
                f"{r['client_cpu_pct']:>9}% {r['master_cpu_us_per_request']:>13} "
                f"{r['secondary_cpu_us_per_request']:>14}  errors={r['errors']}"
            )
        else:
            other = ", ".join(f"{k}={v}" for k, v in r.items() if k != "scenario")
            print(f"{r['scenario']:34} {'':>8} {'':>8} {'':>8} {'':>10} {'':>13} {'':>14}  {other}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load scenario")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best of them is reported")
    parser.add_argument("--catch-up", type=int, default=100_000, help="messages a secondary misses")
    parser.add_argument("--total", type=int, default=1_000_000, help="log size for the RSS figure")
    parser.add_argument("--fsync", default="always", choices=["always", "interval", "never"])
    parser.add_argument(
        "--pin", action="store_true", help="pin the master to one CPU, the secondaries to another"
    )
    parser.add_argument(
        "--scenarios",
        default="sequential,concurrent,bulk,catchup,memory",
        help="comma-separated subset of: sequential,concurrent,bulk,catchup,memory",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/latest.json"))
    args = parser.parse_args()
    runs = []
    cpu_at_start = CpuTimes.now()
    with tempfile.TemporaryDirectory(prefix="replog-bench-") as probe_dir:
        fsync_us = fdatasync_us(Path(probe_dir))
    for i in range(args.repeat):
        root = Path(tempfile.mkdtemp(prefix="replog-bench-"))
        try:
            print(f"run {i + 1}/{args.repeat} in {root}", file=sys.stderr, flush=True)
            runs.append(run_once(args, root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    machine = {
        "cpus": os.cpu_count(),
        "fdatasync_p50_us": round(fsync_us),
        "cpu_steal_pct": round(CpuTimes.now().steal_pct_since(cpu_at_start), 1),
    }
    rows = best(runs)
    print_table(rows)
    print(
        f"\nmachine: {machine['cpus']} CPUs, fdatasync p50 {machine['fdatasync_p50_us']} us, "
        f"CPU steal {machine['cpu_steal_pct']}% during the runs"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = vars(args) | {"out": str(args.out)}
    args.out.write_text(
        json.dumps({"settings": settings, "machine": machine, "best": rows, "runs": runs}, indent=2)
    )
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

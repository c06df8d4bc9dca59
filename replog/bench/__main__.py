"""`python -m replog.bench`: start a durable local cluster (fsync always) and measure it.

Prints a table and writes JSON. Scenarios: sequential appends per w; 16 and 64 concurrent clients
per w; bulk appends of 100; catch-up of a secondary that missed 100,000 messages; the master's RSS
after 1,000,000 messages and the time of a page of 1,000 near the end; cluster mode's appends/s
against static mode's at 16 clients, w=1 and w=majority (`cluster`, see ratio.py). Best of --repeat
runs. `failover` (not repeated: its own --failover-trials) times kill -9 of a cluster-mode master
to the first w=majority 201, with the default timings and with a 0.1 s heartbeat (failover.py).
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

from replog.bench import failover
from replog.bench.machine import CpuTimes, fdatasync_us
from replog.bench.ratio import cluster_vs_static, ratios
from replog.bench.rig import BenchCluster, row
from replog.client import ReplogClient, poll_until

STATIC_SCENARIOS = ("sequential", "concurrent", "bulk", "catchup", "memory")
SCENARIOS = (*STATIC_SCENARIOS, "cluster", "failover")


def run_once(args: argparse.Namespace, root: Path, run_index: int) -> list[dict[str, Any]]:
    """One run: the static cluster's scenarios on one cluster, then cluster vs static mode on
    fresh clusters of their own (the static scenarios leave a long log behind)."""
    wanted = set(args.scenarios.split(","))
    rows: list[dict[str, Any]] = []
    if wanted & set(STATIC_SCENARIOS):
        rows += static_scenarios(args, root / "static", wanted)
    if "cluster" in wanted:
        rows += cluster_vs_static(args, root / "modes", run_index)
    return rows


def static_scenarios(args: argparse.Namespace, root: Path, wanted: set[str]) -> list[dict[str, Any]]:
    cluster = BenchCluster(root, args.fsync, args.pin)
    cluster.start()
    rows: list[dict[str, Any]] = []
    try:
        for clients in (1, 16, 64):
            if ("sequential" if clients == 1 else "concurrent") not in wanted:
                continue
            for w in (1, 2, 3):
                result, cpu = cluster.load(clients=clients, w=w, duration_s=args.seconds)
                rows.append(row("sequential" if clients == 1 else f"{clients} clients", result, w, cpu))
        if "bulk" in wanted:
            bulk, cpu = cluster.load(clients=8, w=3, batch=100, duration_s=args.seconds)
            rows.append(row("bulk 100/request (msgs/s)", bulk, 3, cpu))
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
    chosen: list[dict[str, Any]] = []
    for rows in zip(*runs, strict=True):
        if "per_s" in rows[0]:
            chosen.append(max(rows, key=lambda r: r["per_s"]))
        elif "seconds" in rows[0]:
            chosen.append(min(rows, key=lambda r: r["seconds"]))
        else:
            chosen.append(min(rows, key=lambda r: r["page_1000_ms"]))
    return chosen


def failover_rows(count: int) -> list[dict[str, Any]]:
    """Failover time with cluster mode's default timings and with a 0.1 s heartbeat."""
    rows = []
    for timings in (failover.DEFAULTS, failover.FAST):
        print(f"failover trials, {' '.join(timings.argv())}", file=sys.stderr, flush=True)
        times = failover.trials(
            timings, count, lambda i, s: print(f"  trial {i + 1}: {s:.2f} s", file=sys.stderr, flush=True)
        )
        rows.append(failover.row(timings, times))
    return rows


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
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of: {','.join(SCENARIOS)}",
    )
    parser.add_argument("--failover-trials", type=int, default=5, help="kills per failover timing")
    parser.add_argument("--out", type=Path, default=Path("bench-results/latest.json"))
    args = parser.parse_args()
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {','.join(sorted(unknown))}; known: {','.join(SCENARIOS)}")
    runs = []
    cpu_at_start = CpuTimes.now()
    with tempfile.TemporaryDirectory(prefix="replog-bench-") as probe_dir:
        fsync_us = fdatasync_us(Path(probe_dir))
    repeated = set(args.scenarios.split(",")) - {"failover"}
    for i in range(args.repeat if repeated else 0):
        root = Path(tempfile.mkdtemp(prefix="replog-bench-"))
        try:
            print(f"run {i + 1}/{args.repeat} in {root}", file=sys.stderr, flush=True)
            runs.append(run_once(args, root, i))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    rows = best(runs) if runs else []
    rows += ratios(rows, runs)
    if "failover" in args.scenarios.split(","):
        rows += failover_rows(args.failover_trials)
    machine = {
        "cpus": os.cpu_count(),
        "fdatasync_p50_us": round(fsync_us),
        "cpu_steal_pct": round(CpuTimes.now().steal_pct_since(cpu_at_start), 1),
    }
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

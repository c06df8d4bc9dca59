"""What operating a node costs per append: metrics on against `--no-metrics`, and log lines.

    python bench/ops_cost.py                                   # metrics on vs off
    python bench/ops_cost.py --base-tree /tmp/replog-base      # + nodes from another source tree

Two measurements:
1. The hooks alone, on one thread, without HTTP: microseconds per call of what an append adds
   (`NodeMetrics.appended`), of what a batch adds (the metered transport around a transport that
   does nothing) and of the fsync wrapper. Noise-free, and an upper bound for the request path.
2. End to end: one durable local cluster per variant (`--fsync always`, log level INFO, logs to
   files), all up at once, driven by `replog.bench.load` with 16 and 64 keep-alive clients for
   w=1, 2 and 3 (the benchmark's "concurrent" scenarios). Within each round, each scenario runs on
   every variant back to back, the order alternating, so a busy phase of this shared machine hits
   the variants of a pair alike. Reported per variant and scenario: appends/s and the master's CPU
   microseconds per append, best of the rounds, and the median over rounds of each pair's ratio
   to the first variant.

`--base-tree DIR` adds a variant whose nodes run the `replog` package found in DIR (for example
`git archive COMMIT | tar -x -C DIR`). Run this script from outside the repository (`cd /tmp`), or
the nodes import the tree they start in. Not a test: it prints numbers for the notes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from replog.bench.load import run_load
from replog.bench.machine import process_cpu_s
from replog.metrics import NodeMetrics
from replog.net.metered import metered
from replog.net.transport import ProbeResult, Transport
from replog.testing.cluster import LocalCluster

SCENARIOS = [(clients, w) for clients in (16, 64) for w in (1, 2, 3)]


# 1. the hooks alone -----------------------------------------------------------------------------------
class _Nothing:
    def replicate(self, body: bytes) -> int:
        return 1

    def probe(self) -> ProbeResult:
        return ProbeResult(1, None)

    def close(self) -> None:
        pass


def _per_call_us(call: Callable[[], object], n: int = 200_000) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(n):
            call()
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


def hooks() -> dict[str, float]:
    metrics = NodeMetrics("bench", "master")
    bare: Transport = _Nothing()
    wrapped = metered(lambda url: _Nothing(), metrics, lambda *a: None)("http://s1")
    body = b"x" * 150

    def no_sync(fd: int) -> None:
        pass

    timed = metrics.timed_fsync(no_sync)
    return {
        "append hook (appended)": _per_call_us(lambda: metrics.appended(2, "ok", 0.0012)),
        "batch: metered minus bare transport": _per_call_us(lambda: wrapped.replicate(body))
        - _per_call_us(lambda: bare.replicate(body)),
        "fsync: wrapper minus bare call": _per_call_us(lambda: timed(0)) - _per_call_us(lambda: no_sync(0)),
    }


# 2. end to end ---------------------------------------------------------------------------------------
@dataclass
class Variant:
    name: str
    argv: tuple[str, ...] = ()
    tree: Path | None = None  # None: the replog this script imports
    cluster: LocalCluster | None = None
    runs: list[dict[str, tuple[float, float]]] = field(default_factory=list)

    def start(self, root: Path) -> None:
        saved = os.environ.get("PYTHONPATH")
        if self.tree is not None:
            os.environ["PYTHONPATH"] = str(self.tree)
        try:
            self.cluster = LocalCluster(
                root,
                common_argv=("--fsync=always", *self.argv),
                master_argv=("--heartbeat-interval=0.2",),
                log_dir=root,
            )
            self.cluster.up()
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved

    def load(self, clients: int, w: int, seconds: float) -> tuple[float, float]:
        """(appends/s, master CPU us per append) of one load."""
        assert self.cluster is not None
        pid = self.cluster.master.pid or 0
        before = process_cpu_s(pid)
        result = run_load(self.cluster.master.url, clients=clients, w=w, duration_s=seconds)
        return result.per_s, (process_cpu_s(pid) - before) * 1e6 / max(1, result.requests)


def end_to_end(variants: list[Variant], rounds: int, seconds: float) -> None:
    for round_no in range(rounds):
        for variant in variants:
            variant.runs.append({})
        for index, (clients, w) in enumerate(SCENARIOS):
            order = variants if (round_no + index) % 2 == 0 else variants[::-1]
            scenario = f"{clients} clients w={w}"
            print(f"round {round_no + 1}/{rounds}: {scenario}", file=sys.stderr, flush=True)
            for variant in order:
                variant.runs[-1][scenario] = variant.load(clients, w, seconds)


def report(variants: list[Variant]) -> None:
    reference = variants[0]
    print(
        f"\nend to end, {len(reference.runs)} rounds; ratios to '{reference.name}' (median of paired rounds)"
    )
    print(f"{'scenario':18} {'variant':26} {'best/s':>7} {'ratio':>6} {'us/append':>9} {'ratio':>6}")
    totals: dict[str, list[list[float]]] = {v.name: [[], []] for v in variants}
    for scenario in reference.runs[0]:
        for variant in variants:
            pairs = list(zip(variant.runs, reference.runs, strict=True))
            rate = statistics.median(mine[scenario][0] / ref[scenario][0] for mine, ref in pairs)
            cpu = statistics.median(mine[scenario][1] / ref[scenario][1] for mine, ref in pairs)
            totals[variant.name][0].append(rate)
            totals[variant.name][1].append(cpu)
            best_rate = max(run[scenario][0] for run in variant.runs)
            best_cpu = min(run[scenario][1] for run in variant.runs)
            figures = f"{best_rate:>7,.0f} {rate:>6.3f} {best_cpu:>9.0f} {cpu:>6.3f}"
            print(f"{scenario:18} {variant.name:26} {figures}")
    for name, (rates, cpus) in totals.items():
        rate, cpu = statistics.geometric_mean(rates), statistics.geometric_mean(cpus)
        print(f"overall {name:26} appends/s ratio {rate:.3f}, master CPU per append ratio {cpu:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load")
    parser.add_argument("--base-tree", type=Path, help="also run nodes from this source tree")
    parser.add_argument("--hooks-only", action="store_true", help="only measure the hooks alone")
    args = parser.parse_args()
    print("the hooks alone, microseconds per call (best of 3 x 200,000 calls):")
    for name, us in hooks().items():
        print(f"  {name:40} {us:6.2f}")
    if args.hooks_only:
        return 0
    variants = [Variant("metrics on"), Variant("--no-metrics", ("--no-metrics",))]
    if args.base_tree:
        variants.append(Variant(f"tree {args.base_tree}", tree=args.base_tree.resolve()))
    root = Path(tempfile.mkdtemp(prefix="replog-ops-cost-"))
    try:
        for index, variant in enumerate(variants):
            variant.start(root / f"v{index}")
        end_to_end(variants, args.rounds, args.seconds)
    finally:
        for variant in variants:
            if variant.cluster is not None:
                variant.cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    report(variants)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cluster mode against static mode: steady-state appends/s of each, measured in the same run.

Issue 12 item 7's target: cluster mode within 10 % of static mode at 16 clients, w=majority and
w=1. Each run starts a fresh cluster of each mode in turn (the order alternates from one run to
the next, so neither always gets the cooler machine) and loads each the same way; the benchmark
keeps the best of its runs per row and `ratios` divides the best of each mode.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from replog.bench.rig import BenchCluster, row

MODES = (("static", False), ("cluster", True))
WRITE_CONCERNS: tuple[int | str, ...] = (1, "majority")
CLIENTS = 16


def scenario_name(mode: str, w: int | str) -> str:
    return f"{mode} mode {CLIENTS} clients w={w}"


def cluster_vs_static(args: argparse.Namespace, root: Path, run_index: int) -> list[dict[str, Any]]:
    """One run of both modes; rows in a fixed order (static first) whatever order they ran in."""
    order = MODES if run_index % 2 == 0 else MODES[::-1]
    measured: dict[str, dict[str, Any]] = {}
    for mode, cluster_mode in order:
        bench = BenchCluster(root / f"{mode}-mode", args.fsync, args.pin, cluster_mode)
        bench.start()
        try:
            for w in WRITE_CONCERNS:
                result, cpu = bench.load(clients=CLIENTS, w=w, duration_s=args.seconds)
                measured[scenario_name(mode, w)] = row(f"{mode} mode {CLIENTS} clients", result, w, cpu)
        finally:
            bench.stop()
    return [measured[scenario_name(mode, w)] for mode, _ in MODES for w in WRITE_CONCERNS]


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cluster mode's best appends/s over static mode's, per write concern (when both are there)."""
    by_name = {r["scenario"]: r for r in rows}
    out = []
    for w in WRITE_CONCERNS:
        static, cluster = by_name.get(scenario_name("static", w)), by_name.get(scenario_name("cluster", w))
        if static and cluster and static["per_s"]:
            ratio = cluster["per_s"] / static["per_s"]
            out.append(
                {
                    "scenario": f"cluster/static {CLIENTS} clients w={w}",
                    "ratio": round(ratio, 3),
                    "within_10_pct": ratio >= 0.9,
                }
            )
    return out

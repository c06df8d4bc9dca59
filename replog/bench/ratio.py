"""Cluster mode against static mode: steady-state appends/s of each, measured in the same run.

Issue 12 item 7's target: cluster mode within 10 % of static mode at 16 clients, w=majority and
w=1. Each run starts a fresh cluster of each mode, both up at once (each idles at a few ms of CPU
per second), and loads them back to back per write concern, the order alternating, so that the two
figures of a pair are seconds apart: on a shared machine a neighbour's burst moves a figure by 2x
from one minute to the next. `ratios` gives the best of each mode divided (as every other row of
the benchmark, best of the runs) and the median of the runs' paired ratios, the steadier figure.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
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
    clusters = {mode: BenchCluster(root / f"{mode}-mode", args.fsync, args.pin, on) for mode, on in MODES}
    measured: dict[str, dict[str, Any]] = {}
    try:
        for bench in clusters.values():
            bench.start()
        for index, w in enumerate(WRITE_CONCERNS):
            order = MODES if (run_index + index) % 2 == 0 else MODES[::-1]
            for mode, _ in order:
                result, cpu = clusters[mode].load(clients=CLIENTS, w=w, duration_s=args.seconds)
                measured[scenario_name(mode, w)] = row(f"{mode} mode {CLIENTS} clients", result, w, cpu)
    finally:
        for bench in clusters.values():
            bench.stop()
    return [measured[scenario_name(mode, w)] for mode, _ in MODES for w in WRITE_CONCERNS]


def ratios(rows: list[dict[str, Any]], runs: Sequence[list[dict[str, Any]]] = ()) -> list[dict[str, Any]]:
    """Per write concern (when both modes are there): cluster mode's best appends/s over static
    mode's, and the median over `runs` of each run's own cluster/static ratio."""
    out = []
    for w in WRITE_CONCERNS:
        pair = _pair(rows, w)
        if pair is None:
            continue
        paired = [p[1] / p[0] for p in (_pair(run, w) for run in runs) if p is not None]
        ratio = pair[1] / pair[0]
        line: dict[str, Any] = {
            "scenario": f"cluster/static {CLIENTS} clients w={w}",
            "ratio": round(ratio, 3),
            "within_10_pct": ratio >= 0.9,
        }
        if paired:
            line["median_paired_ratio"] = round(statistics.median(paired), 3)
        out.append(line)
    return out


def _pair(rows: list[dict[str, Any]], w: int | str) -> tuple[float, float] | None:
    """(static, cluster) appends/s for w in these rows, if both are there and static's is not 0."""
    by_name = {r["scenario"]: r for r in rows}
    static, cluster = by_name.get(scenario_name("static", w)), by_name.get(scenario_name("cluster", w))
    if static is None or cluster is None or not static["per_s"]:
        return None
    return float(static["per_s"]), float(cluster["per_s"])

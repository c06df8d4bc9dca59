"""The benchmark's own arithmetic: which run counts, and what it says about the machine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from replog.bench import failover
from replog.bench.__main__ import best
from replog.bench.machine import CpuTimes, fdatasync_us, process_cpu_s
from replog.bench.ratio import ratios, scenario_name


def test_best_takes_the_fastest_rate_the_shortest_catch_up_and_the_quickest_page() -> None:
    run1: list[dict[str, Any]] = [
        {"scenario": "a", "per_s": 10},
        {"scenario": "c", "seconds": 2.0},
        {"page_1000_ms": 5.0},
    ]
    run2: list[dict[str, Any]] = [
        {"scenario": "a", "per_s": 30},
        {"scenario": "c", "seconds": 3.0},
        {"page_1000_ms": 1.0},
    ]
    assert best([run1, run2]) == [run2[0], run1[1], run2[2]]


def test_steal_share_is_steal_jiffies_over_all_jiffies() -> None:
    assert CpuTimes(total=1000, steal=0).steal_pct_since(CpuTimes(total=0, steal=0)) == 0.0
    assert CpuTimes(total=1200, steal=30).steal_pct_since(CpuTimes(total=1000, steal=10)) == 10.0
    assert CpuTimes(total=5, steal=1).steal_pct_since(CpuTimes(total=5, steal=1)) == 0.0


def test_machine_readings_are_plausible_and_leave_nothing_behind(tmp_path: Path) -> None:
    assert fdatasync_us(tmp_path, rounds=5) > 0
    assert list(tmp_path.iterdir()) == []
    now = CpuTimes.now()
    assert now.total > 0 and 0 <= now.steal <= now.total
    assert process_cpu_s(os.getpid()) > 0


def test_ratio_divides_cluster_modes_best_by_static_modes_per_write_concern() -> None:
    rows: list[dict[str, Any]] = [
        {"scenario": scenario_name("static", 1), "per_s": 1000},
        {"scenario": scenario_name("static", "majority"), "per_s": 800},
        {"scenario": scenario_name("cluster", 1), "per_s": 950},
        {"scenario": scenario_name("cluster", "majority"), "per_s": 640},
    ]
    assert ratios(rows) == [
        {"scenario": "cluster/static 16 clients w=1", "ratio": 0.95, "within_10_pct": True},
        {"scenario": "cluster/static 16 clients w=majority", "ratio": 0.8, "within_10_pct": False},
    ]
    assert ratios(rows[:3]) == ratios(rows)[:1]  # a pair missing: no row for it
    assert ratios([]) == []
    slow = [{**r, "per_s": r["per_s"] // 2} if r["scenario"].startswith("cluster") else r for r in rows]
    with_runs = ratios(rows, [rows, slow, slow])
    assert [r["median_paired_ratio"] for r in with_runs] == [0.475, 0.4]  # each run's own pair


def test_failover_row_reports_median_and_max_of_the_trials() -> None:
    assert failover.row(failover.FAST, [1.5, 1.0, 3.0]) == {
        "scenario": "failover, heartbeat 0.1 s",
        "median_s": 1.5,
        "max_s": 3.0,
        "trials": 3,
        "unhealthy_after_s": 0.5,
    }
    assert failover.DEFAULTS.argv() == (
        "--heartbeat-interval=0.2",
        "--suspect-after=0.6",
        "--unhealthy-after=1.5",
    )

"""Failover time: from `kill -9` of a cluster-mode master to the first w=majority 201.

Each trial starts a fresh three-node cluster in cluster mode, waits for a writable master, appends
one entry with w=majority, kills the master with SIGKILL and then appends with w=majority through
`replog.client` against a surviving node (which follows a 421 to the master) until one is answered
201: the time from the kill to that 201 is the failover time. `python -m replog.bench --scenarios
failover` runs it with cluster mode's default timings and with a 0.1 s heartbeat;
bench/failover_time.py runs it with timings of your choice.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replog.client import ReplogClient, ReplogHTTPError
from replog.testing.cluster import LocalCluster


@dataclass(frozen=True)
class Timings:
    """The failure detector's settings a trial runs with (the election timeout follows them)."""

    heartbeat_interval_s: float = 0.2
    suspect_after_s: float = 0.6
    unhealthy_after_s: float = 1.5

    def argv(self) -> tuple[str, ...]:
        return (
            f"--heartbeat-interval={self.heartbeat_interval_s}",
            f"--suspect-after={self.suspect_after_s}",
            f"--unhealthy-after={self.unhealthy_after_s}",
        )

    @property
    def deadline_s(self) -> float:
        """How long a trial waits for the 201 before it counts as failed."""
        return 10 * self.unhealthy_after_s + 30


DEFAULTS = Timings()  # cluster mode's defaults (replog.cli.CLUSTER_HEALTH_DEFAULTS)
FAST = Timings(0.1, 0.3, 0.5)  # a 0.1 s heartbeat


def trial(root: Path, timings: Timings) -> float:
    """One kill -9; seconds from the kill to the first w=majority 201 through a survivor."""
    argv = ("--in-memory", *timings.argv())
    cluster = LocalCluster(root, secondaries=("s1", "s2"), common_argv=argv, log_dir=root, cluster_mode=True)
    try:
        cluster.start()
        first = cluster.current_master(60)
        ReplogClient(cluster.nodes[first].url).append("before", "majority")
        survivor = next(name for name in cluster.nodes if name != first)
        client = ReplogClient(cluster.nodes[survivor].url, request_timeout_s=5)
        cluster.kill(first)
        killed = time.monotonic()
        while time.monotonic() - killed < timings.deadline_s:
            try:
                client.append("after", "majority", timeout_s=2)
                return time.monotonic() - killed
            except (ReplogHTTPError, OSError):
                time.sleep(0.01)  # a benchmark's retry loop, not a test's wait
        raise TimeoutError(f"no w=majority 201 within {timings.deadline_s}s of the kill")
    finally:
        cluster.stop()


def trials(timings: Timings, count: int, report: Callable[[int, float], None] | None = None) -> list[float]:
    """`count` trials, each in its own temporary directory; `report(index, seconds)` after each."""
    times = []
    for index in range(count):
        with tempfile.TemporaryDirectory(prefix="replog-failover-") as root:
            seconds = trial(Path(root), timings)
        times.append(seconds)
        if report is not None:
            report(index, seconds)
    return times


def row(timings: Timings, times: list[float]) -> dict[str, Any]:
    """A benchmark row: median and max of the trials."""
    return {
        "scenario": f"failover, heartbeat {timings.heartbeat_interval_s} s",
        "median_s": round(statistics.median(times), 2),
        "max_s": round(max(times), 2),
        "trials": len(times),
        "unhealthy_after_s": timings.unhealthy_after_s,
    }

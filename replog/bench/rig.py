"""The benchmark's cluster: a durable `LocalCluster` (static or cluster mode) and one table row.

Kept apart from `__main__` so that each scenario module (the static scenarios, `ratio`) builds its
clusters the same way: quiet logs, the chosen fsync policy, optional pinning, CPU time per node.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from replog.bench.load import LoadResult, run_load
from replog.bench.machine import process_cpu_s
from replog.client import ReplogClient
from replog.testing.cluster import MASTER, LocalCluster
from replog.testing.process import NodeProcess


class BenchCluster:
    """A durable local cluster with quiet logs, optionally pinned (see `pinned`), and what the
    benchmark reads of it: CPU time per node and the master's RSS.

    Static mode gets the 0.2 s heartbeat cluster mode has by default, so the two modes differ only
    in what cluster mode adds (election, epochs, fencing), not in how often they probe. In cluster
    mode the master is whichever node won the first election (the node named `master` stands
    first, so it is that one unless the machine stalls it)."""

    def __init__(self, root: Path, fsync: str, pin: bool, cluster_mode: bool = False) -> None:
        self.cluster_mode = cluster_mode
        self.cluster = LocalCluster(
            root,
            common_argv=("--log-level=WARNING", f"--fsync={fsync}"),
            master_argv=() if cluster_mode else ("--heartbeat-interval=0.2",),
            log_dir=root,
            pin=pin,
            cluster_mode=cluster_mode,
        )
        self._pin = pin
        self._use(MASTER)

    def _use(self, name: str) -> None:
        self.master: NodeProcess = self.cluster.nodes[name]
        self.secondaries = [node for other, node in self.cluster.nodes.items() if other != name]
        self.client = ReplogClient(self.master.url, request_timeout_s=120)

    def start(self) -> None:
        self.cluster.start()
        if not self.cluster_mode:
            self.cluster.wait_writable(30)
            return
        elected = self.cluster.current_master(60)
        if elected != MASTER and self._pin:
            print(f"note: {elected} won the election; pinning follows names", file=sys.stderr)
        self._use(elected)

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


def row(name: str, r: LoadResult, w: int | str, node_cpu_us: list[float]) -> dict[str, Any]:
    """One load scenario's line of the table (and of the JSON)."""
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

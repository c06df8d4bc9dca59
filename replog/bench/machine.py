"""What the machine was like during a benchmark, so numbers from different days can be compared.

The machine is shared: a slow disk or a busy neighbour (CPU steal) moves every figure, so the
benchmark records the fdatasync latency of the disk it writes to and the steal share of the run.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path


def fdatasync_us(directory: Path, rounds: int = 200) -> float:
    """Median latency of appending 100 bytes and fdatasync-ing them, in microseconds."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    timings = []
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            os.write(fd, b"x" * 100)
            os.fdatasync(fd)
            timings.append((time.perf_counter() - started) * 1e6)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(timings)


@dataclass(frozen=True)
class CpuTimes:
    """The machine-wide `cpu` line of /proc/stat: total and steal jiffies."""

    total: int
    steal: int

    @classmethod
    def now(cls) -> CpuTimes:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return cls(total=sum(fields[:8]), steal=fields[7] if len(fields) > 7 else 0)

    def steal_pct_since(self, earlier: CpuTimes) -> float:
        total = self.total - earlier.total
        return 100 * (self.steal - earlier.steal) / total if total else 0.0


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds a process has used so far."""
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / os.sysconf("SC_CLK_TCK")

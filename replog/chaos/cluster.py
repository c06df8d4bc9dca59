"""The fault run's cluster: the shared `LocalCluster` with short timings, a proxy per link and a log
file per node, so faults are noticed within a run of a minute and the run can be read back after."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from replog.testing.cluster import LocalCluster

__all__ = ["Timing", "fault_cluster"]


@dataclass(frozen=True)
class Timing:
    """Node timing flags, short so that faults are noticed within a run of a minute."""

    heartbeat_interval_s: float = 0.1
    suspect_after_s: float = 0.3
    unhealthy_after_s: float = 1.0
    # a blackholed or stopped secondary costs one full read timeout per attempt
    replicate_timeout_s: float = 2.0
    probe_timeout_s: float = 0.5

    def argv(self) -> list[str]:
        return [
            f"--heartbeat-interval={self.heartbeat_interval_s}",
            f"--suspect-after={self.suspect_after_s}",
            f"--unhealthy-after={self.unhealthy_after_s}",
            f"--replicate-timeout={self.replicate_timeout_s}",
            f"--probe-timeout={self.probe_timeout_s}",
        ]


def fault_cluster(
    workdir: Path,
    *,
    timing: Timing,
    secret: str | None,
    proxied: bool,
    master_argv: Sequence[str] = (),
    secondary_argv: Sequence[str] = (),
    secondaries: Sequence[str] = ("s1", "s2"),
) -> LocalCluster:
    """The fault run's cluster: nodes' data under `workdir/data`, their output under `workdir/logs`
    (read back after the run), free ports, and with `proxied` a cuttable proxy on every
    master->secondary link."""
    return LocalCluster(
        workdir / "data",
        secondaries={name: tuple(secondary_argv) for name in secondaries},
        master_argv=(*timing.argv(), *master_argv),
        log_dir=workdir / "logs",
        proxied=proxied,
        secret=secret,
    )

"""Multi-process clusters on 127.0.0.1: real `python -m replog` nodes, killed and paused for real."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from replog.testing.cluster import LocalCluster

FAST = (
    "--heartbeat-interval=0.05",
    "--suspect-after=0.3",
    "--unhealthy-after=0.8",
    "--probe-timeout=0.3",
    "--replicate-timeout=2",
    "--retry-base=0.01",
    "--retry-max=0.3",
)

MakeCluster = Callable[..., LocalCluster]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[MakeCluster]:
    """Build a `LocalCluster` with short timings, free ports and one log file per node under the
    test's tmp_path; nothing starts until asked, and every node is stopped at teardown, even when
    the test failed."""
    made: list[LocalCluster] = []

    def make(
        secondaries: dict[str, tuple[str, ...]] | None = None,
        master_argv: tuple[str, ...] = (),
        in_memory: bool = False,
    ) -> LocalCluster:
        workdir = tmp_path / f"cluster{len(made)}"
        cluster = LocalCluster(
            workdir,
            secondaries=secondaries or {"s1": (), "s2": ()},
            master_argv=(*FAST, *master_argv),
            common_argv=("--in-memory",) if in_memory else (),
            log_dir=workdir,
        )
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()

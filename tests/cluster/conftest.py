"""Multi-process clusters on 127.0.0.1: real `python -m replog` nodes, killed and paused for real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from replog.client import ReplogClient, poll_until
from replog.testing.cluster import NodeProcess, NodeSpec, Role, free_port

FAST = (
    "--heartbeat-interval=0.05",
    "--suspect-after=0.3",
    "--unhealthy-after=0.8",
    "--probe-timeout=0.3",
    "--replicate-timeout=2",
    "--retry-base=0.01",
    "--retry-max=0.3",
)


class LocalCluster:
    """A master and named secondaries as processes; nothing starts until asked."""

    def __init__(
        self,
        workdir: Path,
        secondaries: dict[str, tuple[str, ...]],
        master_argv: tuple[str, ...],
        storage: tuple[str, ...],
    ) -> None:
        self.workdir = workdir
        self.secondaries = {
            name: NodeProcess(
                NodeSpec(name, Role.SECONDARY, free_port(), workdir / name, (*storage, *argv)),
                workdir / f"{name}.log",
            )
            for name, argv in secondaries.items()
        }
        urls = ",".join(n.url for n in self.secondaries.values())
        spec = NodeSpec(
            "master",
            Role.MASTER,
            free_port(),
            workdir / "master",
            (f"--secondaries={urls}", *FAST, *storage, *master_argv),
        )
        self.master = NodeProcess(spec, workdir / "master.log")
        self.client = ReplogClient(self.master.url, request_timeout_s=30)

    @property
    def nodes(self) -> dict[str, NodeProcess]:
        return {"master": self.master, **self.secondaries}

    def start(self, *names: str) -> None:
        """Start the named nodes (all by default) and wait until each answers /health."""
        chosen = [self.nodes[n] for n in names] if names else list(self.nodes.values())
        for node in chosen:
            node.start()
        for node in chosen:
            probe = ReplogClient(node.url, request_timeout_s=0.5)
            poll_until(probe.health, 20, 0.02, f"{node.name} up")

    def up(self) -> LocalCluster:
        """Start every node and wait until the master accepts writes."""
        self.start()
        self.wait_writable()
        return self

    def wait_writable(self, timeout_s: float = 10) -> None:
        poll_until(lambda: not self.client.health()["read_only"], timeout_s, what="master writable")

    def messages(self, name: str) -> list[str]:
        return ReplogClient(self.nodes[name].url, request_timeout_s=5).messages()

    def wait_converged(self, timeout_s: float = 20) -> list[str]:
        """Poll until every running node shows the master's log; return it."""

        def same() -> list[str] | None:
            expected = self.messages("master")
            live = [n for n, node in self.nodes.items() if node.alive]
            return expected if all(self.messages(n) == expected for n in live) else None

        return poll_until(same, timeout_s, 0.05, "all nodes converged")

    def secondary_status(self, name: str) -> str:
        url = self.secondaries[name].url
        return next(s["status"] for s in self.client.health()["secondaries"] if s["url"] == url)

    def log_text(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[object]:
    """Build a `LocalCluster`; every node is stopped at teardown, even when the test failed."""
    made: list[LocalCluster] = []

    def make(
        secondaries: dict[str, tuple[str, ...]] | None = None,
        master_argv: tuple[str, ...] = (),
        in_memory: bool = False,
    ) -> LocalCluster:
        storage = ("--in-memory",) if in_memory else ()
        cluster = LocalCluster(
            tmp_path / f"cluster{len(made)}", secondaries or {"s1": (), "s2": ()}, master_argv, storage
        )
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()

"""Cluster-mode nodes in this process, on 127.0.0.1 with short timings, for tests.

Members need their URLs before any node starts, so each node gets a port found free now
(`free_port`; the tiny race with other processes is acceptable for a test rig). A node can be
stopped and started again on the same port and data directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from replog.cluster.node import ClusterNode
from replog.config import ClusterConfig, LinkConfig, MasterConfig, ServerConfig, StorageConfig
from replog.core.backoff import BackoffPolicy
from replog.core.fsync import FsyncPolicy
from replog.core.health import HealthPolicy
from replog.testing.process import free_port

FAST = {
    "heartbeat_s": 0.05, "suspect_s": 0.15, "unhealthy_s": 0.3, "election_min_s": 0.45, "election_max_s": 0.9,
}  # fmt: skip


def cluster_config(
    me: str, members: tuple[str, ...], name: str, data_dir: Path | None, *, first_role: str = "secondary",
    timings: dict[str, float] | None = None,
) -> ClusterConfig:  # fmt: skip
    t = {**FAST, **(timings or {})}
    port = int(me.rsplit(":", 1)[1])
    master = MasterConfig(
        secondaries=tuple(m for m in members if m != me),
        name=name,
        server=ServerConfig(port=port, threads=16, reserved_threads=4),
        storage=StorageConfig(data_dir=data_dir, fsync=FsyncPolicy.NEVER),
        link=LinkConfig(connect_timeout_s=0.2, probe_timeout_s=0.2, replicate_timeout_s=1.0,
                        backoff=BackoffPolicy(base_s=0.01, cap_s=0.1)),
        health=HealthPolicy(t["suspect_s"], t["unhealthy_s"]),
        heartbeat_interval_s=t["heartbeat_s"],
    )  # fmt: skip
    return ClusterConfig(
        me, members, master, first_role=first_role,
        election_min_s=t["election_min_s"], election_max_s=t["election_max_s"],
    )  # fmt: skip


class InProcessCluster:
    """`size` cluster-mode nodes n1..nN; n1 has the first role `master`. Use as a context manager."""

    def __init__(self, root: Path, size: int = 3, timings: dict[str, float] | None = None) -> None:
        self.names = [f"n{i + 1}" for i in range(size)]
        self.urls = {name: f"http://127.0.0.1:{free_port()}" for name in self.names}
        self.members = tuple(self.urls.values())
        self.root, self.timings = root, timings
        self.nodes: dict[str, ClusterNode] = {}

    def config(self, name: str) -> ClusterConfig:
        first = "master" if name == self.names[0] else "secondary"
        return cluster_config(
            self.urls[name], self.members, name, self.root / name, first_role=first, timings=self.timings
        )

    def start(self, *names: str) -> None:
        """Build every node first (its port bound), then start them: as processes would come up."""
        built = {name: ClusterNode(self.config(name)) for name in names or self.names}
        for name, node in built.items():
            self.nodes[name] = node.start()

    def stop(self, name: str) -> None:
        self.nodes.pop(name).stop()

    def health(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = requests.get(self.urls[name] + "/health", timeout=2).json()
        return answer

    def masters(self) -> list[str]:
        """Running nodes whose master role is up (it took its epoch and appended its start record)."""
        return [name for name, node in self.nodes.items() if node.role is not None]

    def __enter__(self) -> InProcessCluster:
        return self

    def __exit__(self, *_: object) -> None:
        for name in list(self.nodes):
            self.stop(name)

"""Whole nodes in this process on 127.0.0.1, port 0, with short timings; `requests` as the client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pykka
import pytest
import requests

from replog.config import LinkConfig, MasterConfig, SecondaryConfig, ServerConfig
from replog.core.backoff import BackoffPolicy
from replog.core.health import HealthPolicy
from replog.node import MasterNode, SecondaryNode
from tests.conftest import wait_for

HTTP_TIMEOUT_S = 10.0
FAST_LINK = LinkConfig(connect_timeout_s=0.5, replicate_timeout_s=2.0, probe_timeout_s=0.5,
                       backoff=BackoffPolicy(base_s=0.01, cap_s=0.1))
SMALL_SERVER = ServerConfig(port=0, threads=16, reserved_threads=4)


class Cluster:
    """A master and N secondaries, each secondary stoppable and restartable (empty) on its port."""

    def __init__(self, secondaries: int = 2, *, server: ServerConfig = SMALL_SERVER,
                 secret: str | None = None) -> None:
        self.secret = secret
        self.secondaries: list[SecondaryNode | None] = []
        self.ports: list[int] = []
        for index in range(secondaries):
            node = self._secondary(index, 0)
            self.secondaries.append(node)
            self.ports.append(node.server.port)
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.config = MasterConfig(secondaries=tuple(self.urls), server=server, link=FAST_LINK,
                                   heartbeat_interval_s=0.05, health=HealthPolicy(0.2, 0.5),
                                   cluster_secret=secret)
        self.master = MasterNode(self.config).start()
        self._master_stopped = False
        self.url = self.master.url

    def _secondary(self, index: int, port: int) -> SecondaryNode:
        config = SecondaryConfig(name=f"s{index + 1}", server=ServerConfig(port=port, threads=8),
                                 cluster_secret=self.secret)
        return SecondaryNode(config).start()

    def stop_secondary(self, index: int) -> None:
        node = self.secondaries[index]
        assert node is not None
        node.stop()
        self.secondaries[index] = None

    def restart_secondary(self, index: int) -> None:
        """Start it again on the same port, with an empty log."""
        assert self.secondaries[index] is None
        self.secondaries[index] = self._secondary(index, self.ports[index])

    # client side ----------------------------------------------------------------------------------
    def post(self, body: Any = None, *, data: bytes | None = None, params: dict[str, str] | None = None,
             path: str = "/messages") -> requests.Response:
        if data is not None:
            return requests.post(self.url + path, data=data, params=params, timeout=HTTP_TIMEOUT_S)
        return requests.post(self.url + path, json=body, params=params, timeout=HTTP_TIMEOUT_S)

    def health(self) -> dict[str, Any]:
        answer: dict[str, Any] = requests.get(self.url + "/health", timeout=HTTP_TIMEOUT_S).json()
        return answer

    def messages(self, index: int | None = None) -> list[str]:
        url = self.url if index is None else self.urls[index]
        answer: list[str] = requests.get(url + "/messages", timeout=HTTP_TIMEOUT_S).json()["messages"]
        return answer

    def wait_health(self, condition: Callable[[dict[str, Any]], bool],
                    timeout_s: float = 5.0) -> dict[str, Any]:
        """Poll the master's /health until `condition` holds for one answer; return that answer."""
        answer: dict[str, Any] = wait_for(
            lambda: (health := self.health()) and condition(health) and health, timeout_s, "/health matched"
        )
        return answer

    def wait_status(self, statuses: list[str], timeout_s: float = 5.0) -> dict[str, Any]:
        """Wait until the secondaries show `statuses` and the gate's quorum figures agree."""
        available = 1 + sum(1 for s in statuses if s != "Unhealthy")
        return self.wait_health(lambda h: [s["status"] for s in h["secondaries"]] == statuses
                                and h["quorum"]["available"] == available, timeout_s)

    def wait_all_healthy(self) -> dict[str, Any]:
        health = self.wait_status(["Healthy"] * len(self.urls))
        assert health["read_only"] is False
        return health

    def stop_master(self) -> None:
        if not self._master_stopped:
            self._master_stopped = True
            self.master.stop()

    def close(self) -> None:
        self.stop_master()
        for node in self.secondaries:
            if node is not None:
                node.stop()
        pykka.ActorRegistry.stop_all(timeout=5.0)


def server(**changes: Any) -> ServerConfig:
    return replace(SMALL_SERVER, **changes)


def healthy_cluster() -> Iterator[Cluster]:
    """A fresh cluster, all secondaries Healthy; closed afterwards even if the test failed."""
    c = Cluster()
    try:
        c.wait_all_healthy()
        yield c
    finally:
        c.close()


cluster = pytest.fixture(healthy_cluster, name="cluster")

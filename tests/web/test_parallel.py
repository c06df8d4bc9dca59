"""Parallel clients: waiting writers hold only their own threads; past the cap, 503 at once.

No clock in the assertions: "does not block" is "answers while every w=3 writer is still waiting"
(unanswered, and counted in the master's `waiting_writers`). With a secondary down those writers
cannot finish, so a request queued behind them would never answer and would fail on its timeout.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests

from .conftest import HTTP_TIMEOUT_S, Cluster, server


class Writers:
    """Many w=3 clients posting at once, each on its own thread with its own connection."""

    def __init__(self, cluster: Cluster, count: int, w: int = 3) -> None:
        self.responses: list[requests.Response | None] = [None] * count
        self._threads = [threading.Thread(target=self._post, args=(cluster, i, w), daemon=True)
                         for i in range(count)]
        for thread in self._threads:
            thread.start()

    def _post(self, cluster: Cluster, index: int, w: int) -> None:
        body = {"message": f"w{index}", "w": w}
        url = cluster.url + "/messages"
        self.responses[index] = requests.post(url, json=body, timeout=HTTP_TIMEOUT_S + 5)

    def unanswered(self) -> int:
        return sum(r is None for r in self.responses)

    def join(self, timeout_s: float = 10.0) -> list[requests.Response]:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        done = [r for r in self.responses if r is not None]
        assert len(done) == len(self.responses), "some writers never got an answer"
        return done


@contextlib.contextmanager
def cluster_with(**server_changes: Any) -> Iterator[Cluster]:
    c = Cluster(server=server(**server_changes))
    try:
        c.wait_all_healthy()
        yield c
    finally:
        c.close()


def test_waiting_writers_do_not_block_others(wait_for: Any) -> None:
    with cluster_with(threads=48, reserved_threads=8) as cluster:
        cluster.stop_secondary(1)
        writers = Writers(cluster, 30)
        wait_for(lambda: cluster.health()["waiting_writers"] == 30, timeout_s=10.0)

        def all_still_waiting() -> bool:
            return writers.unanswered() == 30 and cluster.health()["waiting_writers"] == 30

        response = cluster.post({"message": "quick", "w": 1})
        assert response.status_code == 201
        assert all_still_waiting(), "the w=1 write answered while every w=3 writer waits"
        response = requests.get(cluster.url + "/messages", timeout=HTTP_TIMEOUT_S)
        assert response.status_code == 200
        assert len(response.json()["messages"]) == 31
        response = requests.get(cluster.url + "/health", timeout=HTTP_TIMEOUT_S)
        assert response.status_code == 200
        assert response.json()["waiting_writers"] == 30
        response = cluster.post({"message": "quick-w2", "w": 2})
        assert response.status_code == 201
        assert all_still_waiting(), "reads, /health and a w=2 write answered while the writers wait"

        cluster.restart_secondary(1)
        answers = writers.join()
        assert [r.status_code for r in answers] == [201] * 30
        assert all(r.json()["acks"] == 3 for r in answers)
        master = cluster.messages()
        assert all(master[r.json()["seq"] - 1] == r.json()["message"] for r in answers)
        wait_for(lambda: cluster.messages(1) == master)
        assert len(set(master)) == len(master) == 32


def test_past_the_cap_a_writer_is_refused_at_once(wait_for: Any) -> None:
    with cluster_with(threads=12, reserved_threads=4) as cluster:
        assert cluster.config.server.max_waiting_writers == 8
        cluster.stop_secondary(1)
        writers = Writers(cluster, 8)
        wait_for(lambda: cluster.health()["waiting_writers"] == 8, timeout_s=10.0)
        last_seq = cluster.health()["last_seq"]

        response = cluster.post({"message": "one-too-many", "w": 3})
        assert response.status_code == 503
        assert response.json()["error"] == "overloaded"
        assert response.json()["detail"]
        assert int(response.headers["Retry-After"]) >= 1
        assert writers.unanswered() == 8, "refused at once: not queued behind the waiting writers"
        assert cluster.health()["last_seq"] == last_seq  # refused before storing: no seq consumed
        response = requests.get(cluster.url + "/messages", timeout=HTTP_TIMEOUT_S)
        assert response.status_code == 200
        assert writers.unanswered() == 8 and cluster.health()["waiting_writers"] == 8

        cluster.restart_secondary(1)
        assert [r.status_code for r in writers.join()] == [201] * 8
        assert "one-too-many" not in cluster.messages()
        response = cluster.post({"message": "room-again", "w": 3})
        assert response.status_code == 201
        assert response.json()["seq"] == last_seq + 1


def test_w1_needs_no_waiting_writer_slot(wait_for: Any) -> None:
    """With every waiting-writer slot held (120+ writers on a paused secondary, scaled down here),
    a w=1 append waits only for the master's own store: it is accepted, not 503 overloaded; a w=2
    append, which may wait on a secondary, is refused."""
    with cluster_with(threads=12, reserved_threads=4) as cluster:
        slots = cluster.config.server.max_waiting_writers
        cluster.stop_secondary(1)
        writers = Writers(cluster, slots)
        wait_for(lambda: cluster.health()["waiting_writers"] == slots, timeout_s=10.0)
        assert cluster.post({"message": "w2-refused", "w": 2}).json()["error"] == "overloaded"

        for i in range(5):
            response = cluster.post({"message": f"w1-{i}", "w": 1})
            assert response.status_code == 201, response.text
            assert response.json()["acks"] >= 1
        assert writers.unanswered() == slots, "the slots were full all along"

        cluster.restart_secondary(1)
        assert [r.status_code for r in writers.join()] == [201] * slots
        assert [m for m in cluster.messages() if m.startswith("w1-")] == [f"w1-{i}" for i in range(5)]

"""The master with secondaries down: waiting, 504 on the client's timeout, read-only, recovery."""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

from .conftest import Cluster

WaitFor = Any  # the `wait_for` fixture


class Background:
    """One client request on its own thread, so the test can act while it waits."""

    def __init__(self, cluster: Cluster, body: dict[str, Any]) -> None:
        self.response: requests.Response | None = None
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, args=(cluster, body), daemon=True)
        self._thread.start()

    def _run(self, cluster: Cluster, body: dict[str, Any]) -> None:
        self.response = cluster.post(body)

    def result(self, timeout_s: float = 10.0) -> requests.Response:
        self._thread.join(timeout_s)
        assert self.response is not None, "the request did not finish in time"
        return self.response


def test_w3_waits_for_a_down_secondary_and_answers_when_it_is_back(cluster: Cluster,
                                                                   wait_for: WaitFor) -> None:
    cluster.stop_secondary(1)
    assert cluster.post({"message": "m1", "w": 2}).status_code == 201  # the others are enough
    waiting = Background(cluster, {"message": "m2", "w": 3})
    wait_for(lambda: cluster.health()["waiting_writers"] == 1)
    assert waiting.response is None
    assert cluster.messages() == ["m1", "m2"]  # stored at once, answered later
    assert cluster.post({"message": "m3", "w": 1}).status_code == 201  # not blocked by the waiter
    cluster.restart_secondary(1)  # empty: it must catch up from seq 1
    answer = waiting.result()
    assert answer.status_code == 201
    assert answer.json() == {"seq": 2, "message": "m2", "w": 3, "acks": 3}
    wait_for(lambda: cluster.messages(1) == ["m1", "m2", "m3"])


def test_client_timeout_is_504_and_the_entry_arrives_later(cluster: Cluster, wait_for: WaitFor) -> None:
    assert cluster.post({"message": "before", "w": 3}).status_code == 201
    cluster.stop_secondary(1)
    started = time.monotonic()
    response = cluster.post({"message": "late", "w": 3, "timeout": 0.3})
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == "write_concern_timeout"
    assert (body["seq"], body["acks"], body["w"]) == (2, 2, 3)
    assert body["detail"]
    assert elapsed >= 0.3  # it waited its timeout; answering at all (w=3 cannot be met) shows it ended
    assert cluster.messages() == ["before", "late"]  # stored, never rolled back
    wait_for(lambda: cluster.messages(0) == ["before", "late"])
    assert cluster.health()["waiting_writers"] == 0
    cluster.restart_secondary(1)
    wait_for(lambda: cluster.messages(1) == ["before", "late"])
    wait_for(lambda: [s["lag"] for s in cluster.health()["secondaries"]] == [0, 0])


def test_health_degrades_and_recovers(cluster: Cluster) -> None:
    cluster.stop_secondary(0)
    health = cluster.wait_status(["Unhealthy", "Healthy"])
    assert health["read_only"] is False
    assert health["quorum"] == {"nodes": 3, "available": 2, "needed": 2}
    assert cluster.post({"message": "while-down", "w": 2}).status_code == 201
    lagging = cluster.health()["secondaries"][0]
    assert lagging["lag"] >= 1
    assert lagging["seconds_since_seen"] >= 0.5
    cluster.restart_secondary(0)
    cluster.wait_all_healthy()


def test_no_quorum_is_read_only_then_recovers(cluster: Cluster, wait_for: WaitFor) -> None:
    assert cluster.post({"message": "kept", "w": 3}).status_code == 201
    cluster.stop_secondary(0)
    cluster.stop_secondary(1)
    cluster.wait_health(lambda h: h["read_only"] is True)
    for body in [{"message": "refused"}, {"message": "refused", "w": 3}, {"messages": ["r1", "r2"]}]:
        response = cluster.post(body)
        assert response.status_code == 503
        assert response.json()["error"] == "read_only"
        assert response.json()["detail"]
        assert int(response.headers["Retry-After"]) >= 1
    health = cluster.health()
    assert health["last_seq"] == 1  # nothing stored, no seq consumed
    assert health["quorum"] == {"nodes": 3, "available": 1, "needed": 2}
    assert cluster.messages() == ["kept"]  # reads still work
    cluster.restart_secondary(1)
    cluster.wait_health(lambda h: h["read_only"] is False)
    response = cluster.post({"message": "resumed", "w": 2})
    assert response.status_code == 201
    assert response.json()["seq"] == 2
    wait_for(lambda: cluster.messages(1) == ["kept", "resumed"])  # the restarted node caught up


def test_shutdown_answers_waiting_writers(cluster: Cluster, wait_for: WaitFor) -> None:
    cluster.stop_secondary(1)
    waiting = Background(cluster, {"message": "pending", "w": 3})
    wait_for(lambda: cluster.health()["waiting_writers"] == 1)
    cluster.stop_master()
    answer = waiting.result()
    assert answer.status_code == 503
    assert answer.json()["error"] == "shutting_down"


def test_secret_is_sent_between_nodes(wait_for: WaitFor) -> None:
    cluster = Cluster(secret="s3cret")
    try:
        cluster.wait_all_healthy()
        response = cluster.post({"message": "with-secret", "w": 3})
        assert response.status_code == 201
        assert cluster.messages(0) == ["with-secret"]
    finally:
        cluster.close()

"""The master's HTTP contract on a healthy cluster: answers, aliases, w forms, bulk, reads, health."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from .conftest import HTTP_TIMEOUT_S, Cluster, healthy_cluster

# One cluster for the whole module: these tests only add entries and read.
cluster = pytest.fixture(healthy_cluster, scope="module", name="cluster")


def created(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def test_append_answers_seq_message_w_acks(cluster: Cluster) -> None:
    last = cluster.health()["last_seq"]
    body = created(cluster.post({"message": "plain"}))
    assert body == {"seq": last + 1, "message": "plain", "w": 1, "acks": body["acks"]}
    assert 1 <= body["acks"] <= 3
    assert cluster.messages()[-1] == "plain"


@pytest.mark.parametrize(
    ("body", "params", "w"),
    [
        ({"msg": "alias-msg"}, None, 1),
        ({"message": "alias-wc", "write_concern": 2}, None, 2),
        ({"message": "query-w"}, {"w": "3"}, 3),
        ({"message": "majority", "w": "majority"}, None, 2),
        ({"message": "all", "w": "all"}, None, 3),
        ({"message": "query-all"}, {"w": "all"}, 3),
        ({"message": "string-w", "w": "2"}, None, 2),
    ],
)
def test_aliases_and_w_forms(cluster: Cluster, body: dict[str, Any], params: dict[str, str] | None,
                             w: int) -> None:
    answer = created(cluster.post(body, params=params))
    message = body.get("message", body.get("msg"))
    assert answer["message"] == message
    assert answer["w"] == w
    assert answer["acks"] >= w
    held = [index for index in range(2) if message in cluster.messages(index)]
    assert len(held) >= w - 1  # an ack means held: w-1 secondaries show it already


def test_w3_is_on_every_node_when_answered(cluster: Cluster) -> None:
    answer = created(cluster.post({"message": "everywhere", "w": 3}))
    assert answer["acks"] == 3
    master = cluster.messages()
    assert cluster.messages(0) == master[: answer["seq"]]
    assert cluster.messages(1) == master[: answer["seq"]]


def test_bulk_append(cluster: Cluster) -> None:
    last = cluster.health()["last_seq"]
    answer = created(cluster.post({"messages": ["b1", "b2", "b3"], "w": 3}))
    assert answer["seqs"] == [last + 1, last + 2, last + 3]
    assert (answer["first_seq"], answer["last_seq"], answer["count"]) == (last + 1, last + 3, 3)
    assert answer["w"] == 3
    assert answer["acks"] == 3
    for index in (None, 0, 1):
        assert cluster.messages(index)[last:last + 3] == ["b1", "b2", "b3"]


def test_unicode_round_trip(cluster: Cluster) -> None:
    created(cluster.post({"message": "héllo ✓ 日本 🚀", "w": 3}))
    for index in (None, 0, 1):
        assert cluster.messages(index)[-1] == "héllo ✓ 日本 🚀"


def test_generous_timeout_still_answers_201(cluster: Cluster) -> None:
    assert created(cluster.post({"message": "with-timeout", "w": 3, "timeout": 5}))["acks"] == 3


def test_seqs_are_consecutive_and_the_log_is_in_order(cluster: Cluster, wait_for: Any) -> None:
    seqs = [created(cluster.post({"message": f"order-{i}", "w": 1 + i % 3}))["seq"] for i in range(10)]
    assert seqs == list(range(seqs[0], seqs[0] + 10))
    master = cluster.messages()
    assert master[seqs[0] - 1:] == [f"order-{i}" for i in range(10)]
    assert len(master) == cluster.health()["last_seq"]
    wait_for(lambda: cluster.messages(0) == master and cluster.messages(1) == master)


def test_paged_read(cluster: Cluster) -> None:
    created(cluster.post({"messages": ["p1", "p2", "p3"]}))
    total = cluster.health()["last_seq"]
    page = requests.get(f"{cluster.url}/messages", params={"offset": total - 3, "limit": 2},
                        timeout=HTTP_TIMEOUT_S).json()
    assert page == {"messages": ["p1", "p2"], "offset": total - 3, "total": total}


def test_health_shape(cluster: Cluster, wait_for: Any) -> None:
    created(cluster.post({"message": "for-health", "w": 3}))
    health = cluster.health()
    assert health["role"] == "master"
    assert health["read_only"] is False
    assert health["quorum"] == {"nodes": 3, "available": 3, "needed": 2}
    assert health["last_seq"] == len(cluster.messages())
    assert health["epoch"] == 1 and health["last"] == {"seq": health["last_seq"], "epoch": 1}  # static mode
    assert [s["url"] for s in health["secondaries"]] == cluster.urls  # exactly as configured
    for secondary in health["secondaries"]:
        assert secondary["status"] == "Healthy"
        assert 0 <= secondary["seconds_since_seen"] < 1.0
        assert secondary["acked_seq"] == health["last_seq"]
        assert secondary["lag"] == 0
        assert secondary["log_id"] == health["log_id"]


def test_secondaries_report_their_own_health(cluster: Cluster) -> None:
    created(cluster.post({"message": "for-secondary-health", "w": 3}))
    master = cluster.health()
    for index, url in enumerate(cluster.urls):
        health = requests.get(url + "/health", timeout=HTTP_TIMEOUT_S).json()
        assert health["role"] == "secondary"
        assert health["name"] == f"s{index + 1}"
        assert health["log_id"] == master["log_id"]
        assert health["acked_seq"] == master["last_seq"]
        assert health["epoch"] == 1 and health["last"] == {"seq": health["acked_seq"], "epoch": 1}

"""Idempotency keys over HTTP: repeats get the original seq, a reused key 422, bad keys 400,
header vs body id, bulk ids, a repeat joining a waiting write, and keys reaching secondaries."""

from __future__ import annotations

import requests

from tests.conftest import WaitFor
from tests.web.conftest import HTTP_TIMEOUT_S, Cluster
from tests.web.test_master_faults import Background


def post_keyed(cluster: Cluster, body: dict[str, object], key: str) -> requests.Response:
    return requests.post(cluster.url + "/messages", json=body, headers={"Idempotency-Key": key},
                         timeout=HTTP_TIMEOUT_S)


def test_a_repeat_gets_the_original_seq_and_stores_nothing(cluster: Cluster) -> None:
    first = cluster.post({"message": "m1", "id": "k1", "w": 3})
    assert first.status_code == 201
    assert first.json() == {"seq": 1, "message": "m1", "w": 3, "acks": 3, "duplicate": False}
    assert cluster.post({"message": "other"}).status_code == 201
    again = cluster.post({"message": "m1", "id": "k1", "w": 3})
    assert again.status_code == 201
    assert again.json() == {"seq": 1, "message": "m1", "w": 3, "acks": 3, "duplicate": True}
    assert cluster.messages() == ["m1", "other"]


def test_the_same_key_with_another_message_is_422_with_the_original_seq(cluster: Cluster) -> None:
    assert cluster.post({"message": "m1", "id": "k1"}).status_code == 201
    refused = cluster.post({"message": "changed", "id": "k1"})
    assert refused.status_code == 422
    body = refused.json()
    assert body["error"] == "idempotency_key_reused" and body["seq"] == 1 and body["detail"]
    assert cluster.messages() == ["m1"]


def test_the_header_is_a_key_and_must_agree_with_the_body(cluster: Cluster) -> None:
    assert post_keyed(cluster, {"message": "m1"}, "h1").json()["seq"] == 1
    assert post_keyed(cluster, {"message": "m1"}, "h1").json()["duplicate"] is True
    assert post_keyed(cluster, {"message": "m1", "id": "h1"}, "h1").json()["seq"] == 1  # agree: fine
    differ = post_keyed(cluster, {"message": "m2", "id": "b2"}, "h2")
    assert differ.status_code == 400 and "differ" in differ.json()["detail"]
    bulk = post_keyed(cluster, {"messages": ["a"]}, "h3")
    assert bulk.status_code == 400
    assert cluster.messages() == ["m1"]


def test_bad_keys_are_400_and_store_nothing(cluster: Cluster) -> None:
    for key in ["", "with space", "x" * 129, 7, None, "caf\u00e9"]:
        response = cluster.post({"message": "m", "id": key})
        assert response.status_code == 400, key
        assert response.json()["error"] == "bad_request"
    assert post_keyed(cluster, {"message": "m"}, "x" * 129).status_code == 400
    assert cluster.messages() == []


def test_bulk_ids_dedup_per_message_and_a_twice_given_id_is_400(cluster: Cluster) -> None:
    first = cluster.post({"messages": [{"message": "a", "id": "ka"}, "plain", {"message": "b", "id": "kb"}],
                          "w": 2})
    assert first.status_code == 201
    assert first.json()["seqs"] == [1, 2, 3] and first.json()["duplicates"] == 0
    again = cluster.post({"messages": [{"message": "b", "id": "kb"}, {"message": "c", "id": "kc"}], "w": 2})
    assert again.status_code == 201
    body = again.json()
    assert body["seqs"] == [3, 4] and body["duplicates"] == 1 and body["count"] == 2
    twice = cluster.post({"messages": [{"message": "d", "id": "kd"}, {"message": "d", "id": "kd"}]})
    assert twice.status_code == 400
    reused = cluster.post({"messages": [{"message": "e", "id": "ke"}, {"message": "not a", "id": "ka"}]})
    assert reused.status_code == 422 and reused.json()["seq"] == 1
    for bad in [{"message": "x", "id": "k", "extra": 1}, {"id": "k"}, 5, {"message": "x", "id": ""}]:
        assert cluster.post({"messages": [bad]}).status_code == 400, bad
    assert cluster.messages() == ["a", "plain", "b", "c"]  # nothing from the refused requests


def test_a_repeat_while_the_first_waits_joins_its_outcome(cluster: Cluster, wait_for: WaitFor) -> None:
    cluster.stop_secondary(1)
    first = Background(cluster, {"message": "m", "id": "k", "w": 3})
    wait_for(lambda: cluster.health()["waiting_writers"] == 1)
    repeat = Background(cluster, {"message": "m", "id": "k", "w": 3})
    wait_for(lambda: cluster.health()["waiting_writers"] == 2)
    assert cluster.messages() == ["m"]
    cluster.restart_secondary(1)
    a, b = first.result(), repeat.result()
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["seq"] == b.json()["seq"] == 1
    assert (a.json()["duplicate"], b.json()["duplicate"]) == (False, True)
    assert cluster.messages() == ["m"]


def test_a_retry_after_a_504_stores_once(cluster: Cluster, wait_for: WaitFor) -> None:
    cluster.stop_secondary(1)
    timed_out = cluster.post({"message": "m", "id": "k", "w": 3, "timeout": 0.2})
    assert timed_out.status_code == 504 and timed_out.json()["seq"] == 1
    cluster.restart_secondary(1)
    retried = cluster.post({"message": "m", "id": "k", "w": 3})
    assert retried.status_code == 201 and retried.json()["seq"] == 1
    assert cluster.messages() == ["m"]


def test_keys_reach_the_secondaries(cluster: Cluster, wait_for: WaitFor) -> None:
    assert cluster.post({"message": "m", "id": "k", "w": 3}).status_code == 201
    for node in cluster.secondaries:
        assert node is not None
        assert node.store.keys_held == 1
        assert node.store.read(1, 1)[0].key == "k"

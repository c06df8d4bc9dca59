"""The served OpenAPI document states the limits the node enforces: each number is tried at and past it.

The document reads its numbers from `core.wire` and the config; these tests hold it to the running
node, so a limit changed in one place and retyped in the other fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from replog.core.entry import MAX_KEY_BYTES
from replog.core.wire import MAX_BULK_MESSAGES, MAX_TIMEOUT_S
from replog.web.common import MAX_PAGE
from replog.web.follow import MAX_WAIT_S
from replog.web.openapi import openapi

from .conftest import HTTP_TIMEOUT_S, Cluster, server

MAX_BODY = 64 * 1024  # room for a bulk append of MAX_BULK_MESSAGES one-letter messages


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(server=server(max_body_bytes=MAX_BODY))
    try:
        c.wait_all_healthy()
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def append(cluster: Cluster) -> dict[str, Any]:
    """The served document's `POST /messages` operation."""
    response = requests.get(cluster.url + "/openapi.json", timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 200
    operation: dict[str, Any] = response.json()["paths"]["/messages"]["post"]
    return operation


def properties(append: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = append["requestBody"]["content"]["application/json"]["schema"]["properties"]
    return found


def assert_refused(cluster: Cluster, body: Any = None, *, data: bytes | None = None, status: int) -> None:
    """The append is refused with `status` and consumes no seq."""
    before = cluster.master.store.stored_seq
    response = cluster.post(body, data=data)
    assert response.status_code == status, response.text
    assert response.json()["error"] in ("bad_request", "payload_too_large")
    assert cluster.master.store.stored_seq == before


def test_the_numbers_are_the_enforced_constants() -> None:
    doc = openapi(node_count=5, max_body_bytes=1234)
    post = doc["paths"]["/messages"]["post"]
    props = properties(post)
    assert props["messages"]["maxItems"] == MAX_BULK_MESSAGES
    assert props["timeout"]["maximum"] == MAX_TIMEOUT_S
    assert props["w"]["oneOf"][0]["maximum"] == 5
    assert post["requestBody"]["x-max-body-bytes"] == 1234
    limit = next(p for p in doc["paths"]["/messages"]["get"]["parameters"] if p["name"] == "limit")
    assert str(MAX_PAGE) in limit["description"]
    json.dumps(doc)  # serves as JSON
    assert props["id"]["maxLength"] == MAX_KEY_BYTES
    wait = next(p for p in doc["paths"]["/entries"]["get"]["parameters"] if p["name"] == "wait")
    assert wait["schema"]["maximum"] == MAX_WAIT_S
    assert "/stream" in doc["paths"] and "422" in post["responses"]


def test_key_length_and_wait_at_their_maximum_are_accepted_and_past_them_400(cluster: Cluster) -> None:
    assert cluster.post({"message": "m", "id": "k" * MAX_KEY_BYTES}).status_code == 201
    assert cluster.post({"message": "m", "id": "k" * (MAX_KEY_BYTES + 1)}).status_code == 400
    ok = requests.get(cluster.url + "/entries", params={"from_seq": 1, "wait": MAX_WAIT_S}, timeout=10)
    assert ok.status_code == 200
    past = requests.get(cluster.url + "/entries", params={"wait": MAX_WAIT_S + 0.01}, timeout=10)
    assert past.status_code == 400


def test_bulk_at_max_items_is_accepted_and_one_more_is_400(cluster: Cluster, append: dict[str, Any]) -> None:
    max_items = properties(append)["messages"]["maxItems"]
    assert_refused(cluster, {"messages": ["m"] * (max_items + 1)}, status=400)
    accepted = cluster.post({"messages": ["m"] * max_items})
    assert accepted.status_code == 201, accepted.text
    assert len(accepted.json()["seqs"]) == max_items


def test_timeout_at_maximum_is_accepted_and_past_it_is_400(cluster: Cluster, append: dict[str, Any]) -> None:
    maximum = properties(append)["timeout"]["maximum"]
    assert_refused(cluster, {"message": "late", "timeout": maximum + 1}, status=400)
    assert cluster.post({"message": "patient", "timeout": maximum}).status_code == 201


def test_w_at_maximum_is_accepted_and_past_it_is_400(cluster: Cluster, append: dict[str, Any]) -> None:
    maximum = properties(append)["w"]["oneOf"][0]["maximum"]
    assert maximum == cluster.config.node_count
    assert_refused(cluster, {"message": "too many", "w": maximum + 1}, status=400)
    assert cluster.post({"message": "everyone", "w": maximum}).status_code == 201


def test_body_at_the_limit_is_accepted_and_one_byte_more_is_413(
    cluster: Cluster, append: dict[str, Any]
) -> None:
    limit = append["requestBody"]["x-max-body-bytes"]
    assert limit == MAX_BODY
    frame = len(json.dumps({"message": ""}).encode())
    at_limit = json.dumps({"message": "x" * (limit - frame)}).encode()
    assert len(at_limit) == limit
    past = json.dumps({"message": "x" * (limit - frame + 1)}).encode()
    assert_refused(cluster, data=past, status=413)
    assert cluster.post(data=at_limit).status_code == 201


@pytest.mark.parametrize("name", ["offset", "limit"])
def test_read_minimums_are_accepted_and_one_less_is_400(cluster: Cluster, name: str) -> None:
    doc = requests.get(cluster.url + "/openapi.json", timeout=HTTP_TIMEOUT_S).json()
    params = doc["paths"]["/messages"]["get"]["parameters"]
    minimum = next(p for p in params if p["name"] == name)["schema"]["minimum"]
    url = cluster.url + "/messages"
    assert requests.get(url, params={name: minimum}, timeout=HTTP_TIMEOUT_S).status_code == 200
    assert requests.get(url, params={name: minimum - 1}, timeout=HTTP_TIMEOUT_S).status_code == 400

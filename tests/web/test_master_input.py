"""Bad input on the master: the right 4xx, a JSON error body, and nothing stored, no seq consumed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from .conftest import HTTP_TIMEOUT_S, Cluster, server

MAX_BODY = 2048


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(server=server(max_body_bytes=MAX_BODY))
    try:
        c.wait_all_healthy()
        assert c.post({"message": "first"}).status_code == 201
        yield c
    finally:
        c.close()


@pytest.fixture
def unchanged(cluster: Cluster) -> Iterator[None]:
    """The test must leave the master's log exactly as it found it."""
    before = cluster.messages(), cluster.master.store.stored_seq
    yield
    assert (cluster.messages(), cluster.master.store.stored_seq) == before


def assert_json_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{not json", id="invalid-json"),
        pytest.param(b"", id="empty-body"),
        pytest.param(b"  \n", id="blank-body"),
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'"Msg"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b'{"message": "\xff"}', id="bad-utf8"),
        pytest.param(b'{"message": "\\ud800"}', id="lone-surrogate"),
    ],
)
def test_bad_body_is_400(cluster: Cluster, raw: bytes) -> None:
    assert_json_error(cluster.post(data=raw), 400, "bad_request")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-message"),
        pytest.param({"w": 1}, id="only-w"),
        pytest.param({"message": ""}, id="empty-message"),
        pytest.param({"msg": ""}, id="empty-msg"),
        pytest.param({"message": 5}, id="number-message"),
        pytest.param({"message": None}, id="null-message"),
        pytest.param({"message": ["a"]}, id="list-message"),
        pytest.param({"message": "a", "w": 0}, id="w-0"),
        pytest.param({"message": "a", "w": 4}, id="w-N+2"),
        pytest.param({"message": "a", "w": -1}, id="w-negative"),
        pytest.param({"message": "a", "w": "x"}, id="w-word"),
        pytest.param({"message": "a", "w": 1.5}, id="w-float"),
        pytest.param({"message": "a", "w": True}, id="w-bool"),
        pytest.param({"message": "a", "write_concern": 9}, id="write_concern-too-big"),
        pytest.param({"message": "a", "w": 1, "write_concern": 2}, id="w-conflict"),
        pytest.param({"message": "a", "timeout": -1}, id="negative-timeout"),
        pytest.param({"message": "a", "timeout": "soon"}, id="word-timeout"),
        pytest.param({"messages": []}, id="empty-bulk"),
        pytest.param({"messages": ["ok", ""]}, id="bulk-with-empty"),
        pytest.param({"messages": ["ok", 3]}, id="bulk-with-number"),
    ],
)
def test_bad_request_is_400(cluster: Cluster, body: dict[str, Any]) -> None:
    assert_json_error(cluster.post(body), 400, "bad_request")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("w", ["0", "4", "-1", "x", "1.5"])
def test_bad_query_w_is_400(cluster: Cluster, w: str) -> None:
    assert_json_error(cluster.post({"message": "a"}, params={"w": w}), 400, "bad_request")


@pytest.mark.usefixtures("unchanged")
def test_body_over_the_limit_is_413(cluster: Cluster) -> None:
    raw = json.dumps({"message": "x" * (MAX_BODY + 100)}).encode()
    body = assert_json_error(cluster.post(data=raw), 413, "payload_too_large")
    assert body["limit_bytes"] == MAX_BODY


@pytest.mark.usefixtures("unchanged")
def test_chunked_body_over_the_limit_is_413(cluster: Cluster) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"message": "'
        yield b"x" * (MAX_BODY + 100)
        yield b'"}'

    response = requests.post(cluster.url + "/messages", data=chunks(), timeout=HTTP_TIMEOUT_S)
    assert_json_error(response, 413, "payload_too_large")


@pytest.mark.usefixtures("unchanged")
def test_body_far_over_the_limit_is_still_a_json_413(cluster: Cluster) -> None:
    raw = json.dumps({"message": "x" * (3 * MAX_BODY)}).encode()
    assert_json_error(cluster.post(data=raw), 413, "payload_too_large")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/nope", "/message", "/replicate", "/messages/1"])
def test_unknown_path_is_404(cluster: Cluster, method: str, path: str) -> None:
    response = requests.request(method, cluster.url + path, json={"message": "a"}, timeout=HTTP_TIMEOUT_S)
    assert_json_error(response, 404, "not_found")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(("method", "path"), [("PUT", "/messages"), ("DELETE", "/messages"),
                                              ("PATCH", "/messages"), ("POST", "/health")])
def test_wrong_method_is_405(cluster: Cluster, method: str, path: str) -> None:
    response = requests.request(method, cluster.url + path, json={"message": "a"}, timeout=HTTP_TIMEOUT_S)
    assert_json_error(response, 405, "method_not_allowed")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("query", ["offset=-1", "offset=x", "limit=0", "limit=y"])
def test_bad_paging_is_400(cluster: Cluster, query: str) -> None:
    response = requests.get(f"{cluster.url}/messages?{query}", timeout=HTTP_TIMEOUT_S)
    assert_json_error(response, 400, "bad_request")


def test_refused_writes_consume_no_seq(cluster: Cluster) -> None:
    last = cluster.health()["last_seq"]
    for body in [{"message": ""}, {"message": "a", "w": 0}, {"w": 1}]:
        assert cluster.post(body).status_code == 400
    assert cluster.post(data=b"{").status_code == 400
    response = cluster.post({"message": "after-refusals"})
    assert response.status_code == 201
    assert response.json()["seq"] == last + 1
    assert cluster.messages()[-1] == "after-refusals"

"""Hostile input on the master over HTTP: a 4xx JSON error, never a 500; nothing stored, no seq used.

Each body here was a 500 (RecursionError, ValueError, OverflowError) or silently accepted (a Unicode
digit as w, a duplicate key, an 8 MiB message) before the parser was hardened.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from replog.core.wire import MAX_JSON_DEPTH

from .conftest import HTTP_TIMEOUT_S, Cluster, server

MAX_MESSAGE = 100


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(server=server(max_body_bytes=256 * 1024, max_message_bytes=MAX_MESSAGE))
    try:
        c.wait_all_healthy()
        yield c
    finally:
        c.close()


@pytest.fixture
def unchanged(cluster: Cluster) -> Iterator[None]:
    before = cluster.master.store.stored_seq
    yield
    assert cluster.master.store.stored_seq == before, "nothing stored, no seq consumed"


def refused(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == code and isinstance(body["detail"], str)
    return body


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"message": "m", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", id="array-1000-deep"),
        pytest.param(b'{"message": "m", "x": ' + b'{"a": ' * 1000 + b"1" + b"}" * 1000 + b"}", id="objects"),
        pytest.param(b"[" * 100_000, id="unclosed-100000"),
        pytest.param(
            b'{"message": "m", "x": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}", id="just-past"
        ),
        pytest.param(b'{"message": "a", "message": "b"}', id="duplicate-message"),
        pytest.param(b'{"message": "a", "w": 1, "w": 3}', id="duplicate-w"),
        pytest.param(b'{"message": "m", "timeout": 1' + b"0" * 400 + b"}", id="400-digit-timeout"),
        pytest.param(b'{"message": "m", "w": 1' + b"0" * 5000 + b"}", id="5000-digit-w"),
    ],
)
def test_hostile_json_is_a_400_not_a_500(cluster: Cluster, raw: bytes) -> None:
    refused(cluster.post(data=raw), 400, "bad_request")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("w", ["\u0663", "\u00b2", "\uff12", "9" * 5000])
@pytest.mark.parametrize("where", ["body", "query"])
def test_w_that_is_not_ascii_digits_is_a_400(cluster: Cluster, w: str, where: str) -> None:
    if where == "body":
        response = cluster.post({"message": "m", "w": w})
    else:
        response = cluster.post({"message": "m"}, params={"w": w})
    refused(response, 400, "bad_request")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"message": "x" * (MAX_MESSAGE + 1)}, id="single"),
        pytest.param({"msg": "é" * (MAX_MESSAGE // 2 + 1)}, id="utf8-bytes"),
        pytest.param({"messages": ["ok", "x" * (MAX_MESSAGE + 1)]}, id="bulk"),
    ],
)
def test_a_message_over_max_message_bytes_is_413(cluster: Cluster, body: dict[str, Any]) -> None:
    assert refused(cluster.post(body), 413, "message_too_large")["limit_bytes"] == MAX_MESSAGE


def test_a_message_at_the_limit_is_stored(cluster: Cluster) -> None:
    response = cluster.post({"message": "x" * MAX_MESSAGE})
    assert response.status_code == 201, response.text


def test_the_openapi_document_states_the_message_limit(cluster: Cluster) -> None:
    doc = requests.get(cluster.url + "/openapi.json", timeout=HTTP_TIMEOUT_S).json()
    schema = doc["paths"]["/messages"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    fields = schema["properties"]
    assert fields["message"]["x-max-message-bytes"] == MAX_MESSAGE
    string, keyed = fields["messages"]["items"]["oneOf"]  # a message, or {message, id} (issue 13)
    assert json.dumps(string) == json.dumps(fields["message"])
    assert json.dumps(keyed["properties"]["message"]) == json.dumps(fields["message"])

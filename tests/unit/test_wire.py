"""Request validation: every accepted shape, and every refused one with a 400 and no side effect."""

from __future__ import annotations

from typing import Any

import pytest

from replog.core import quorum, wire
from replog.core.errors import BadRequest
from replog.core.wire import (
    MAX_BULK_MESSAGES,
    AppendRequest,
    decode_json_object,
    parse_append,
    resolve_w,
)

N = 3  # master + 2 secondaries


def parse(body: dict[str, Any], query_w: str | None = None, nodes: int = N) -> AppendRequest:
    return parse_append(body, query_w, nodes)


def test_defaults_to_w1_without_timeout() -> None:
    assert parse({"message": "hi"}) == AppendRequest(("hi",), 1, None, bulk=False)


def test_msg_alias() -> None:
    assert parse({"msg": "hi"}).messages == ("hi",)


@pytest.mark.parametrize(
    ("body", "query_w", "w"),
    [
        ({"message": "m", "w": 2}, None, 2),
        ({"message": "m", "write_concern": 3}, None, 3),
        ({"message": "m"}, "2", 2),
        ({"message": "m"}, " 3 ", 3),
        ({"message": "m", "w": "2"}, None, 2),
        ({"message": "m", "w": "majority"}, None, 2),
        ({"message": "m", "w": "MAJORITY"}, None, 2),
        ({"message": "m", "w": "all"}, None, 3),
        ({"message": "m"}, "all", 3),
        ({"message": "m", "w": 2, "write_concern": 2}, "2", 2),  # repeated, but consistent
        ({"message": "m", "w": 2}, "2", 2),
    ],
)
def test_w_forms(body: dict[str, Any], query_w: str | None, w: int) -> None:
    assert parse(body, query_w).w == w


@pytest.mark.parametrize(("nodes", "majority"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_majority_and_all_depend_on_the_node_count(nodes: int, majority: int) -> None:
    assert resolve_w("majority", nodes) == majority
    assert resolve_w("all", nodes) == nodes


def test_w_majority_is_the_quorum_rules_majority() -> None:
    """One definition of "majority": the quorum rule's, which w="majority" uses rather than retypes."""
    assert wire.majority is quorum.majority
    assert all(resolve_w("majority", n) == quorum.majority(n) for n in range(1, 50))


@pytest.mark.parametrize("bad_w", [0, N + 1, -1, "x", 1.5, True, False, None, [2], {"w": 2}, "", "-1", "2.0"])
def test_bad_w_is_refused(bad_w: object) -> None:
    with pytest.raises(BadRequest):
        parse({"message": "m", "w": bad_w})


@pytest.mark.parametrize("bad_query_w", ["0", "4", "-1", "x", "1.5", ""])
def test_bad_query_w_is_refused(bad_query_w: str) -> None:
    with pytest.raises(BadRequest):
        parse({"message": "m"}, bad_query_w)


@pytest.mark.parametrize(
    ("body", "query_w"),
    [
        ({"message": "m", "w": 1, "write_concern": 2}, None),
        ({"message": "m", "w": 2}, "3"),
        ({"message": "m", "write_concern": "all"}, "majority"),
    ],
)
def test_conflicting_ws_are_refused(body: dict[str, Any], query_w: str | None) -> None:
    with pytest.raises(BadRequest, match="different values"):
        parse(body, query_w)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"w": 1},
        {"message": ""},
        {"msg": ""},
        {"message": None},
        {"message": 5},
        {"message": ["a"]},
        {"message": {"text": "a"}},
        {"message": True},
        {"message": "\ud800"},  # a lone surrogate: not encodable as UTF-8
        {"message": "a", "msg": "a"},
        {"message": "a", "messages": ["b"]},
        {"messages": []},
        {"messages": "abc"},
        {"messages": ["ok", ""]},
        {"messages": ["ok", 5]},
        {"messages": ["ok", None]},
        {"messages": ["\udfff"]},
        {"messages": ["x"] * (MAX_BULK_MESSAGES + 1)},
    ],
)
def test_bad_messages_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(body)
    assert caught.value.status == 400
    assert caught.value.body()["error"] == "bad_request"


def test_unicode_message_is_kept() -> None:
    assert parse({"message": "héllo ✓ 日本"}).messages == ("héllo ✓ 日本",)


def test_bulk_messages() -> None:
    request = parse({"messages": ["a", "b", "c"], "w": "all"})
    assert request == AppendRequest(("a", "b", "c"), 3, None, bulk=True)


@pytest.mark.parametrize("timeout", [0.001, 1, 2.5, 86400])
def test_timeout_accepted(timeout: float) -> None:
    assert parse({"message": "m", "timeout": timeout}).timeout_s == float(timeout)


def test_null_timeout_means_none() -> None:
    assert parse({"message": "m", "timeout": None}).timeout_s is None


@pytest.mark.parametrize("timeout", [0, -1, "5", True, float("nan"), float("inf"), 86401, [1]])
def test_bad_timeout_refused(timeout: object) -> None:
    with pytest.raises(BadRequest):
        parse({"message": "m", "timeout": timeout})


@pytest.mark.parametrize(
    "raw", [b"", b"   \n", b"{", b"not json", b"[1, 2]", b'"text"', b"null", b"5", b"\xff\xfe\x00"]
)
def test_decode_refuses_anything_but_one_object(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        decode_json_object(raw)


def test_decode_object() -> None:
    assert decode_json_object(b' {"message": "x"} ') == {"message": "x"}

"""Request validation: every accepted shape, and every refused one with a 400 and no side effect."""

from __future__ import annotations

import json
from typing import Any

import pytest

from replog.core import quorum, wire
from replog.core.errors import BadRequest
from replog.core.matching import BatchHead, crc_of
from replog.core.wire import (
    MAX_BULK_MESSAGES,
    AppendRequest,
    Entry,
    decode_json_object,
    encode_batch,
    parse_append,
    parse_replicate,
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


# --- /replicate batches ---------------------------------------------------------------------------


HEAD0 = {"epoch": 1, "prev_seq": 0, "prev_epoch": 0, "prev_crc": 0}  # a batch from seq 1
HEAD2 = {"epoch": 1, "prev_seq": 2, "prev_epoch": 1, "prev_crc": crc_of("b")}


def test_replicate_round_trip() -> None:
    entries = [Entry(1, "a", stored_at=9.0), Entry(2, "b")]
    body = json.loads(encode_batch("L", BatchHead(1, 0, 0, 0), entries))
    # The compact, contiguous form, with the consistency check's fields.
    assert body == {"log_id": "L", **HEAD0, "first_seq": 1, "messages": ["a", "b"]}
    request = parse_replicate(body)
    assert (request.log_id, request.head) == ("L", BatchHead(1, 0, 0, 0))
    assert request.entries == (Entry(1, "a"), Entry(2, "b"))  # stored_at is never sent


def test_a_batch_across_epochs_says_where_they_change() -> None:
    entries = [Entry(3, "c", epoch=1), Entry(4, "d", epoch=3), Entry(5, "e", epoch=3)]
    head = BatchHead(4, 2, 1, crc_of("b"))
    body = json.loads(encode_batch("L", head, entries))
    assert body["epochs"] == [[1, 3], [3, 4]]
    assert [(e.seq, e.epoch) for e in parse_replicate(body).entries] == [(3, 1), (4, 3), (5, 3)]


@pytest.mark.parametrize(
    "epochs",
    [
        [],
        [[1, 4]],
        [[1, 3], [1, 4]],
        [[2, 3], [1, 4]],
        [[1, 3], [2, 3]],
        [[1, 3], [5, 4]],
        [[1, 3], [2, 9]],
        [5],
    ],
)
def test_bad_epoch_runs_are_refused(epochs: list[Any]) -> None:
    body = {"log_id": "L", **HEAD2, "epoch": 4, "first_seq": 3, "messages": ["c", "d", "e"], "epochs": epochs}
    with pytest.raises(BadRequest):
        parse_replicate(body)


def test_replicate_general_form_is_accepted_too() -> None:
    body = {"log_id": "L", **HEAD2, "entries": [{"seq": 3, "message": "c"}, {"seq": 4, "message": "e"}]}
    assert parse_replicate(body).entries == (Entry(3, "c"), Entry(4, "e"))


def test_handshake_is_an_empty_compact_batch() -> None:
    body = json.loads(encode_batch("L", BatchHead(1, 7, 1, 99), []))
    request = parse_replicate(body)
    assert (request.entries, request.head) == ((), BatchHead(1, 7, 1, 99))


def test_a_batch_without_the_check_fields_is_refused_clearly() -> None:
    """An older master's batch: mixed versions are not supported (a 400 that says so)."""
    with pytest.raises(BadRequest, match=r"lacks epoch, prev_seq, prev_epoch, prev_crc.*older replog"):
        parse_replicate({"log_id": "L", "first_seq": 1, "messages": ["a"]})


@pytest.mark.parametrize(
    "body",
    [
        {"log_id": "L", **HEAD0, "first_seq": 0, "messages": ["a"]},
        {"log_id": "L", **HEAD0, "first_seq": "1", "messages": ["a"]},
        {"log_id": "L", **HEAD0, "messages": ["a"]},
        {"log_id": "L", **HEAD0, "first_seq": 1, "messages": "a"},
        {"log_id": "L", **HEAD0, "first_seq": 1, "messages": ["a", ""]},
        {"log_id": "L", **HEAD0, "first_seq": 1, "messages": ["a", 7]},
        {"log_id": "L", **HEAD0, "first_seq": 2, "messages": ["a"]},  # not right after prev_seq
        {"log_id": "L", **HEAD0, "epoch": 0, "first_seq": 1, "messages": ["a"]},
        {"log_id": "L", **HEAD0, "prev_crc": 5, "first_seq": 1, "messages": ["a"]},
        {"log_id": "L", **HEAD0, "prev_epoch": 1, "first_seq": 1, "messages": ["a"]},
        {"log_id": "L", **HEAD2, "prev_epoch": 2, "first_seq": 3, "messages": ["a"]},  # above epoch
        {"log_id": "L", **HEAD2, "prev_crc": 1 << 32, "first_seq": 3, "messages": ["a"]},
        {"log_id": "L", **HEAD2, "prev_seq": -1, "first_seq": 3, "messages": ["a"]},
        {"log_id": "L", **HEAD2, "prev_seq": True, "first_seq": 3, "messages": ["a"]},
    ],
)
def test_bad_compact_batches_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        parse_replicate(body)


def test_replicate_empty_batch_is_allowed() -> None:
    assert parse_replicate({"log_id": "L", **HEAD0, "entries": []}).entries == ()


@pytest.mark.parametrize(
    "body",
    [
        {"entries": []},
        {"log_id": "", "entries": []},
        {"log_id": 5, "entries": []},
        {"log_id": "L"},
        {"log_id": "L", "entries": {}},
        {"log_id": "L", "entries": [5]},
        {"log_id": "L", "entries": [{"seq": 0, "message": "a"}]},
        {"log_id": "L", "entries": [{"seq": -1, "message": "a"}]},
        {"log_id": "L", "entries": [{"seq": "1", "message": "a"}]},
        {"log_id": "L", "entries": [{"seq": True, "message": "a"}]},
        {"log_id": "L", "entries": [{"seq": 1.0, "message": "a"}]},
        {"log_id": "L", "entries": [{"seq": 1}]},
        {"log_id": "L", "entries": [{"seq": 1, "message": ""}]},
        {"log_id": "L", "entries": [{"seq": 2, "message": "a"}, {"seq": 1, "message": "b"}]},
        {"log_id": "L", "entries": [{"seq": 1, "message": "a"}, {"seq": 1, "message": "a"}]},
        {"log_id": "L", "entries": [{"seq": 1, "message": "a", "epoch": 2}]},  # above the batch's epoch
    ],
)
def test_replicate_refuses_malformed_batches(body: dict[str, Any]) -> None:
    body = {**HEAD0, **body} if "log_id" in body else body
    with pytest.raises(BadRequest):
        parse_replicate(body)


def test_replicate_refuses_gaps_between_seqs() -> None:
    """Entries run contiguously from prev_seq + 1: nothing past a gap is ever sent or held."""
    body = {"log_id": "L", **HEAD0, "entries": [{"seq": 1, "message": "a"}, {"seq": 5, "message": "e"}]}
    with pytest.raises(BadRequest, match="contiguously"):
        parse_replicate(body)

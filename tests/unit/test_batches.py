"""The internal batch protocol: /replicate bodies with the consistency check's fields, /entries pages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from replog.core.batches import encode_batch, parse_entries_page, parse_replicate
from replog.core.entry import Entry, Kind
from replog.core.errors import BadRequest
from replog.core.matching import BatchHead, crc_of

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


def test_an_entries_page_reads_back_whole() -> None:
    body = {
        "entries": [
            {"seq": 4, "message": "d", "stored_at": 1.5, "epoch": 2},
            {"seq": 5, "message": "", "stored_at": 2.0, "epoch": 3, "kind": "epoch_start"},
            {"seq": 6, "message": "f", "stored_at": 2.5, "epoch": 3, "key": "k"},
        ]
    }
    assert parse_entries_page(body) == [
        Entry(4, "d", 1.5, 2),
        Entry(5, "", 2.0, 3, Kind.EPOCH_START),
        Entry(6, "f", 2.5, 3, Kind.MESSAGE, "k"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"entries": [5]},
        {"entries": [{"seq": "1", "message": "a"}]},
        {"entries": [{"seq": 1, "message": "a", "kind": "what"}]},
        {"entries": [{"seq": 1, "message": "a", "key": 5}]},
        {"entries": [{"seq": 1, "message": "a"}, {"seq": 3, "message": "c"}]},
    ],
)
def test_a_malformed_entries_page_is_refused(body: Any) -> None:
    with pytest.raises(ValueError):
        parse_entries_page(body)

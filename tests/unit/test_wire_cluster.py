"""Batches of cluster mode: entry epochs and control records, added only when needed."""

from __future__ import annotations

import json

import pytest

from replog.core.batches import encode_batch, parse_replicate
from replog.core.entry import Entry, Kind
from replog.core.errors import BadRequest
from replog.core.matching import BatchHead, crc_of


def head(first: int, epoch: int = 2) -> BatchHead:
    """The check's fields of a batch from `first`, sent in `epoch`, after an epoch-1 entry \"p\"."""
    return BatchHead(epoch, first - 1, min(first - 1, 1), crc_of("p") if first > 1 else 0)


def fields(first: int, epoch: int = 2) -> dict[str, int]:
    h = head(first, epoch)
    return {"epoch": h.epoch, "prev_seq": h.prev_seq, "prev_epoch": h.prev_epoch, "prev_crc": h.prev_crc}


def roundtrip(entries: list[Entry]) -> tuple[Entry, ...]:
    body = json.loads(encode_batch("log", head(entries[0].seq if entries else 1), entries))
    return parse_replicate(body).entries


def test_static_batches_carry_no_epoch_runs() -> None:
    body = json.loads(encode_batch("log", head(3, epoch=1), [Entry(3, "a"), Entry(4, "b")]))
    assert body == {"log_id": "log", **fields(3, epoch=1), "first_seq": 3, "messages": ["a", "b"]}


def test_epochs_and_control_records_survive_the_wire() -> None:
    entries = [Entry(5, "a", 0.0, 1), Entry(6, "", 0.0, 2, Kind.EPOCH_START), Entry(7, "b", 0.0, 2)]
    body = json.loads(encode_batch("log", head(5), entries))
    assert body["epochs"] == [[1, 5], [2, 6]] and body["control"] == [6]
    got = roundtrip(entries)
    assert [(e.seq, e.message, e.epoch, e.kind) for e in got] == [
        (5, "a", 1, Kind.MESSAGE), (6, "", 2, Kind.EPOCH_START), (7, "b", 2, Kind.MESSAGE)
    ]  # fmt: skip


@pytest.mark.parametrize(
    "extra",
    [
        {"epochs": [[2, 9]]},  # does not start at first_seq
        {"epochs": [[2, 5], [1, 6]]},  # goes down
        {"epochs": [[2, 5], [3, 5]]},  # not rising in seq
        {"epochs": [[2, 5], [3, 7]]},  # starts past the batch
        {"epochs": "x"},
        {"epochs": [[0, 5]]},
        {"control": [7]},  # outside the batch
        {"control": [5]},  # a control record with a message
        {"control": "5"},
    ],
)
def test_bad_cluster_fields_are_refused(extra: dict[str, object]) -> None:
    body = {"log_id": "log", **fields(5), "first_seq": 5, "messages": ["a", "b"], **extra}
    with pytest.raises(BadRequest):
        parse_replicate(body)


def test_an_empty_message_is_refused_unless_it_is_a_control_record() -> None:
    with pytest.raises(BadRequest):
        parse_replicate({"log_id": "log", **fields(1), "first_seq": 1, "messages": [""], "epochs": [[2, 1]]})

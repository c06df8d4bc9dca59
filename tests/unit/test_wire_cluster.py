"""Batches of cluster mode: entry epochs and control records, added only when needed."""

from __future__ import annotations

import json

import pytest

from replog.core.entry import Entry, Kind
from replog.core.errors import BadRequest
from replog.core.wire import encode_batch, parse_replicate


def roundtrip(entries: list[Entry]) -> tuple[Entry, ...]:
    body = json.loads(encode_batch("log", entries[0].seq if entries else 1, entries))
    return parse_replicate(body).entries


def test_static_batches_are_unchanged() -> None:
    body = json.loads(encode_batch("log", 3, [Entry(3, "a"), Entry(4, "b")]))
    assert body == {"log_id": "log", "first_seq": 3, "messages": ["a", "b"]}


def test_epochs_and_control_records_survive_the_wire() -> None:
    entries = [Entry(5, "a", 0.0, 1), Entry(6, "", 0.0, 2, Kind.EPOCH_START), Entry(7, "b", 0.0, 2)]
    body = json.loads(encode_batch("log", 5, entries))
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
    body = {"log_id": "log", "first_seq": 5, "messages": ["a", "b"], **extra}
    with pytest.raises(BadRequest):
        parse_replicate(body)


def test_an_empty_message_is_refused_unless_it_is_a_control_record() -> None:
    with pytest.raises(BadRequest):
        parse_replicate({"log_id": "log", "first_seq": 1, "messages": [""], "epochs": [[2, 1]]})

"""Idempotency keys in the stores: both kinds dedup under their lock, secondaries note the keys
they apply, removed entries lose their keys, and a disk store rebuilds its window at open."""

from __future__ import annotations

import pytest

from replog.core.dedup import WindowPolicy
from replog.core.entry import Entry, NewEntry
from replog.core.errors import BadRequest, IdempotencyKeyReused
from replog.core.wire import decode_json_object, encode_batch, parse_replicate
from tests.unit.stores import MakeStore, Opener, messages, wait_for


def test_a_repeat_is_not_stored_and_gets_the_original_seq(make_store: MakeStore) -> None:
    store = make_store("log")
    first = store.append_unique([NewEntry("a", "ka"), NewEntry("b")])
    assert first.seqs == (1, 2) and first.repeats == 0
    again = store.append_unique([NewEntry("c", "kc"), NewEntry("a", "ka")])
    assert again.seqs == (3, 1) and again.repeats == 1
    with pytest.raises(IdempotencyKeyReused):
        store.append_unique([NewEntry("d", "kd"), NewEntry("not a", "ka")])
    wait_for(lambda: store.stored_seq == 3)
    assert messages(store) == ["a", "b", "c"]  # the refused append stored nothing, not even "d"
    assert store.keys_held == 2


def test_a_secondary_notes_the_keys_it_applies(make_store: MakeStore) -> None:
    store = make_store(None)
    store.apply("log", [Entry(1, "a", key="ka"), Entry(2, "b")])
    assert store.keys_held == 1
    assert store.append_unique([NewEntry("a", "ka")]).seqs == (1,)  # were it promoted


def test_rolled_back_entries_lose_their_keys(make_store: MakeStore) -> None:
    store = make_store("log")
    store.append_unique([NewEntry("a", "ka"), NewEntry("b", "kb")])
    wait_for(lambda: store.stored_seq == 2)
    assert store.truncate_after(1, "test") == 1
    assert store.append_unique([NewEntry("b", "kb")]).seqs == (2,)  # stored again, as new
    assert store.append_unique([NewEntry("b", "kb")]).repeats == 1


def test_a_disk_store_rebuilds_its_window_at_open(open_store: Opener) -> None:
    clock = [1000.0]
    store = open_store("n", new_log_id="log", clock=lambda: clock[0])
    store.append_unique([NewEntry(f"m{i}", f"k{i}") for i in range(1, 6)])
    clock[0] = 2000.0
    store.append_unique([NewEntry("late", "late")])
    store.close()
    policy = WindowPolicy(max_keys=100, max_age_s=1500.0)
    clock[0] = 2600.0  # k1..k5 are 1600 s old: expired; "late" is 600 s old
    reopened = open_store("n", clock=lambda: clock[0], dedup=policy)
    assert reopened.keys_held == 1
    assert reopened.append_unique([NewEntry("late", "late")]).seqs == (6,)
    assert reopened.append_unique([NewEntry("m1", "k1")]).seqs == (7,)  # expired: new


def test_the_compact_batch_carries_keys_only_when_some_entry_has_one() -> None:
    plain = decode_json_object(encode_batch("log", 1, [Entry(1, "a"), Entry(2, "b")]))
    assert "keys" not in plain
    keyed = encode_batch("log", 1, [Entry(1, "a"), Entry(2, "b", key="kb")])
    batch = parse_replicate(decode_json_object(keyed))
    assert [e.key for e in batch.entries] == [None, "kb"]
    general = parse_replicate({"log_id": "log", "entries": [{"seq": 1, "message": "a", "key": "k"}]})
    assert general.entries[0].key == "k"


@pytest.mark.parametrize("keys", [["k"], "k", [1, None], None])
def test_bad_batch_keys_are_refused(keys: object) -> None:
    body = {"log_id": "log", "first_seq": 1, "messages": ["a", "b"], "keys": keys}
    if keys is None:
        assert [e.key for e in parse_replicate(body).entries] == [None, None]
        return
    with pytest.raises(BadRequest):
        parse_replicate(body)

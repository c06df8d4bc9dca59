"""The store is where an epoch change and a batch meet, under one lock: a batch of an older
epoch never lands once a newer epoch is saved, and a vote is saved only while the log stands
where the vote was decided (Raft: a follower of a newer term rejects the old leader's entries)."""

from __future__ import annotations

import pytest

from replog.core.epochs import Position
from replog.core.errors import StaleEpoch
from replog.core.matching import BatchHead, crc_of
from tests.unit.stores import MakeStore, entries, messages, wait_for

EMPTY_HEAD = BatchHead(epoch=1, prev_seq=0, prev_epoch=0, prev_crc=0)


def test_a_batch_of_an_older_epoch_is_refused_once_a_newer_epoch_is_saved(make_store: MakeStore) -> None:
    store = make_store("L")
    assert store.apply("L", entries(1, 2), EMPTY_HEAD) == 2
    store.save_term(3, "http://candidate")  # this node voted in epoch 3
    with pytest.raises(StaleEpoch) as refused:
        store.apply("L", entries(3, 3), BatchHead(epoch=1, prev_seq=2, prev_epoch=1, prev_crc=0))
    assert refused.value.extra["epoch"] == 3
    assert (store.stored_seq, messages(store)) == (2, ["m1", "m2"])  # nothing stored


def test_a_vote_is_saved_only_while_the_log_ends_where_it_was_decided(make_store: MakeStore) -> None:
    store = make_store("L")
    store.apply("L", entries(1, 2), EMPTY_HEAD)
    wait_for(lambda: store.stored_seq == 2)
    decided_at = store.last_position()
    assert decided_at == Position(1, 2)
    store.apply("L", entries(3, 3), BatchHead(epoch=1, prev_seq=2, prev_epoch=1, prev_crc=crc_of("m2")))
    with pytest.raises(ValueError, match="moved"):
        store.save_term(2, "http://candidate", if_last=decided_at)
    assert store.epoch == 1 and store.vote is None
    store.save_term(2, "http://candidate", if_last=store.last_position())
    assert store.epoch == 2 and store.vote is not None


"""The ordered, idempotent log: order, dedup, gaps, conflicts, log ids."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replog.core.errors import LogConflict, LogIdMismatch
from replog.core.log import MemoryPrefix, OrderedLog, cap_bytes, check_log_id
from replog.core.wire import Entry


def entries(*seqs: int) -> list[Entry]:
    return [Entry(s, f"m{s}") for s in seqs]


def messages(log: OrderedLog) -> list[str]:
    return [e.message for e in log.read(1, 1_000_000)]


def fresh() -> OrderedLog:
    return OrderedLog(MemoryPrefix())


def test_master_append_assigns_consecutive_seqs_from_one() -> None:
    log = fresh()
    first = log.append(["a", "b"], now=1.0)
    second = log.append(["c"], now=2.0)
    assert [(e.seq, e.message) for e in first + second] == [(1, "a"), (2, "b"), (3, "c")]
    assert log.contiguous_seq == 3
    assert messages(log) == ["a", "b", "c"]
    assert second[0].stored_at == 2.0


def test_insert_in_order_joins_the_prefix() -> None:
    log = fresh()
    joined = log.insert(entries(1, 2, 3), now=0.0)
    assert [e.seq for e in joined] == [1, 2, 3]
    assert log.contiguous_seq == 3
    assert messages(log) == ["m1", "m2", "m3"]


def test_insert_is_idempotent() -> None:
    log = fresh()
    log.insert(entries(1, 2), now=0.0)
    assert log.insert(entries(1, 2), now=1.0) == []
    assert log.insert(entries(2), now=1.0) == []
    assert messages(log) == ["m1", "m2"]
    assert log.pending_count == 0


def test_gap_hides_later_entries_until_filled() -> None:
    log = fresh()
    log.insert(entries(1, 3, 4), now=0.0)
    assert log.contiguous_seq == 1
    assert messages(log) == ["m1"]
    assert log.read(3, 10) == []
    assert log.pending_count == 2
    joined = log.insert(entries(2), now=0.0)
    assert [e.seq for e in joined] == [2, 3, 4]
    assert log.contiguous_seq == 4
    assert messages(log) == ["m1", "m2", "m3", "m4"]
    assert log.pending_count == 0


def test_gap_at_seq_one_hides_everything() -> None:
    log = fresh()
    log.insert(entries(2, 3), now=0.0)
    assert log.contiguous_seq == 0
    assert messages(log) == []
    assert log.read(2, 10) == []


def test_duplicate_of_pending_entry_is_a_no_op() -> None:
    log = fresh()
    log.insert(entries(3), now=0.0)
    log.insert(entries(3), now=0.0)
    assert log.pending_count == 1
    log.insert(entries(1, 2), now=0.0)
    assert messages(log) == ["m1", "m2", "m3"]


@pytest.mark.parametrize("clash_seq", [1, 3])  # one in the prefix, one pending past the gap
def test_conflict_raises_and_leaves_state_unchanged(clash_seq: int) -> None:
    log = fresh()
    log.insert(entries(1, 3), now=0.0)
    before = (log.contiguous_seq, log.pending_count, messages(log))
    batch = [Entry(2, "m2"), Entry(clash_seq, "other"), Entry(4, "m4")]
    with pytest.raises(LogConflict) as caught:
        log.insert(batch, now=0.0)
    assert caught.value.extra["seq"] == clash_seq
    assert caught.value.status == 409
    # Nothing from the refused batch was applied, not even the entries before the clash.
    assert (log.contiguous_seq, log.pending_count, messages(log)) == before
    log.insert(entries(2), now=0.0)
    assert messages(log) == ["m1", "m2", "m3"]


def test_log_id_is_to_be_adopted_on_first_contact_only() -> None:
    assert check_log_id(None, "A") is True
    assert check_log_id("A", "A") is False


def test_log_id_mismatch_is_refused() -> None:
    with pytest.raises(LogIdMismatch) as caught:
        check_log_id("A", "B")
    assert caught.value.status == 409
    assert caught.value.extra == {"expected_log_id": "A", "got_log_id": "B"}


def test_read_bounds() -> None:
    log = fresh()
    log.append([f"m{i}" for i in range(1, 6)], now=0.0)
    assert [e.seq for e in log.read(2, 2)] == [2, 3]
    assert [e.seq for e in log.read(4, 100)] == [4, 5]
    assert log.read(0, 10) == []
    assert log.read(6, 10) == []
    assert log.read(1, 0) == []


def test_read_caps_bytes_but_returns_at_least_one_entry() -> None:
    log = fresh()
    log.append(["x" * 100] * 5, now=0.0)
    assert len(log.read(1, 10, max_bytes=10)) == 1
    assert len(log.read(1, 10, max_bytes=2 * 132)) == 2
    assert cap_bytes([], 10) == []


@settings(max_examples=100, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=12),
    data=st.data(),
)
def test_any_delivery_order_with_duplicates_gives_the_same_prefix(count: int, data: st.DataObject) -> None:
    """Deliver a set of entries in any order, in batches, with repeats: the visible log is a prefix
    of the master's, and it is the whole log once every entry arrived at least once."""
    master = [Entry(s, f"msg-{s}") for s in range(1, count + 1)]
    deliveries = data.draw(st.lists(st.sampled_from(master), max_size=40) if master else st.just([]))
    deliveries = deliveries + data.draw(st.permutations(master))  # everything arrives at least once
    cuts = sorted(data.draw(st.sets(st.integers(0, len(deliveries)), max_size=8)))
    log = fresh()
    start = 0
    for cut in [*cuts, len(deliveries)]:
        batch = sorted(set(deliveries[start:cut]), key=lambda e: e.seq)
        log.insert(batch, now=0.0)
        shown = messages(log)
        assert shown == [e.message for e in master[: len(shown)]]
        assert log.contiguous_seq == len(shown)
        start = cut
    assert messages(log) == [e.message for e in master]
    assert log.pending_count == 0

"""The ordered, idempotent log: order, dedup, gaps, conflicts, log ids."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replog.core.entry import Kind, NewEntry, entry_bytes
from replog.core.epochs import Position
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


# --- epochs, kinds and keys -------------------------------------------------------------------------


def test_append_takes_the_masters_epoch_keys_and_control_records() -> None:
    log = fresh()
    assert log.last_position() == Position(0, 0)
    log.append(["a"], now=1.0)  # a log without epochs yet: epoch 1
    appended = log.append([NewEntry.epoch_start(), NewEntry("b", key="id-b"), "c"], now=2.0, epoch=3)
    assert appended == [
        Entry(2, "", 2.0, 3, Kind.EPOCH_START),
        Entry(3, "b", 2.0, 3, Kind.MESSAGE, "id-b"),
        Entry(4, "c", 2.0, 3),
    ]
    assert log.bounds() == [(1, 1), (3, 2)]
    assert log.last_position() == Position(3, 4)
    assert [log.epoch_at(s) for s in range(5)] == [0, 1, 3, 3, 3]
    with pytest.raises(ValueError, match="not held"):
        log.epoch_at(5)
    assert log.append(["d"], now=3.0)[0].epoch == 3, "default: the log's last epoch"


def test_a_master_never_appends_below_the_logs_epoch() -> None:
    log = fresh()
    log.append(["a"], now=0.0, epoch=2)
    with pytest.raises(ValueError, match="epoch 1"):
        log.append(["b"], now=0.0, epoch=1)
    assert log.contiguous_seq == 1


def test_new_entries_are_checked() -> None:
    with pytest.raises(ValueError, match="control record"):
        NewEntry("not empty", kind=Kind.EPOCH_START)
    with pytest.raises(ValueError, match=r"1\.\.128 UTF-8 bytes"):
        NewEntry("m", key="é" * 65)
    with pytest.raises(ValueError, match=r"1\.\.128"):
        NewEntry("m", key="")
    assert NewEntry("m", key="é" * 64).key == "é" * 64


@pytest.mark.parametrize("clash_seq", [1, 3])  # one in the prefix, one pending past the gap
def test_the_same_seq_from_another_epoch_is_not_a_duplicate(clash_seq: int) -> None:
    log = fresh()
    log.insert([Entry(1, "m1", epoch=2), Entry(3, "m3", epoch=2)], now=0.0)
    before = (log.contiguous_seq, log.pending_count, log.bounds(), messages(log))
    with pytest.raises(LogConflict, match="from epoch 2, this one is from epoch 5") as caught:
        log.insert([Entry(2, "m2", epoch=2), Entry(clash_seq, f"m{clash_seq}", epoch=5)], now=0.0)
    assert caught.value.extra["seq"] == clash_seq
    assert (log.contiguous_seq, log.pending_count, log.bounds(), messages(log)) == before
    assert log.insert([Entry(1, "m1", epoch=2)], now=0.0) == [], "same seq, epoch and message: a duplicate"


def test_same_seq_and_epoch_with_another_key_is_a_conflict() -> None:
    log = fresh()
    log.insert([Entry(1, "m1", key="a")], now=0.0)
    with pytest.raises(LogConflict):
        log.insert([Entry(1, "m1", key="b")], now=0.0)


def test_a_batch_whose_epochs_go_down_changes_nothing() -> None:
    log = fresh()
    log.insert([Entry(1, "a", epoch=3)], now=0.0)
    with pytest.raises(LogConflict, match="below the epoch 3"):
        log.insert([Entry(2, "b", epoch=3), Entry(3, "c", epoch=2)], now=0.0)
    assert (log.contiguous_seq, log.bounds()) == (1, [(3, 1)])


def test_insert_keeps_the_epoch_index_and_the_entry_whole() -> None:
    log = fresh()
    log.insert([Entry(3, "c", 9.0, 4, Kind.MESSAGE, "k3")], now=5.0)  # waits past the gap
    joined = log.insert([Entry(1, "a", epoch=2), Entry(2, "", epoch=4, kind=Kind.EPOCH_START)], now=6.0)
    assert joined == [
        Entry(1, "a", 6.0, 2),
        Entry(2, "", 6.0, 4, Kind.EPOCH_START),
        Entry(3, "c", 5.0, 4, Kind.MESSAGE, "k3"),  # stored_at: when it arrived here
    ]
    assert log.bounds() == [(2, 1), (4, 2)]
    assert log.last_position() == Position(4, 3)


def test_truncate_after_forgets_the_suffix_its_epochs_and_pending_entries() -> None:
    log = fresh()
    log.insert(
        [Entry(s, f"m{s}", epoch=1 if s < 3 else 2) for s in (1, 2, 3, 4)] + [Entry(9, "m9", epoch=2)],
        now=0.0,
    )
    log.truncate_after(2)
    assert (log.contiguous_seq, log.pending_count, log.bounds()) == (2, 0, [(1, 1)])
    assert log.insert([Entry(3, "new", epoch=3)], now=0.0) == [Entry(3, "new", 0.0, 3)]
    log.truncate_after(10)  # past the end: nothing
    assert log.contiguous_seq == 3
    with pytest.raises(ValueError):
        log.truncate_after(-1)


def test_entries_past_a_gap_are_bounded_in_bytes() -> None:
    big = "x" * 100_000
    log = OrderedLog(MemoryPrefix(), max_pending_bytes=1_000_000)
    log.insert([Entry(s, big) for s in range(2, 40)], now=0.0)
    assert log.pending_count == 9  # 9 x (100,049 + 140) bytes fit in 1,000,000
    assert log.pending_bytes == 9 * entry_bytes(Entry(2, big)) <= 1_000_000
    log.insert([Entry(1, big)], now=0.0)
    assert (log.contiguous_seq, log.pending_count, log.pending_bytes) == (10, 0, 0)
    assert log.insert([Entry(s, big) for s in range(12, 16)], now=0.0) == []  # 11 is missing
    assert log.pending_bytes == 4 * entry_bytes(Entry(11, big))

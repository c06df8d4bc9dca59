"""The ordered, idempotent log: order, dedup, refused gaps, conflicts, log ids, learned entries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replog.core.entry import Kind, NewEntry
from replog.core.epochs import Position
from replog.core.errors import LogConflict, LogIdMismatch, LogMismatch
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
    assert log.insert(entries(2, 3), now=1.0) == [Entry(3, "m3", 1.0)], "the held part is skipped"
    assert messages(log) == ["m1", "m2", "m3"]


def test_entries_past_a_gap_are_refused_not_held() -> None:
    log = fresh()
    log.insert(entries(1), now=0.0)
    with pytest.raises(LogMismatch) as caught:
        log.insert(entries(3, 4), now=0.0)
    assert caught.value.status == 409
    assert caught.value.extra == {"reason": "gap", "last": {"seq": 1, "epoch": 1}, "bounds": [[1, 1]]}
    assert (log.contiguous_seq, messages(log)) == (1, ["m1"])


def test_gap_at_seq_one_is_refused() -> None:
    log = fresh()
    with pytest.raises(LogMismatch, match="past this log's last seq 0"):
        log.insert(entries(2, 3), now=0.0)
    assert log.contiguous_seq == 0


def test_an_empty_batch_changes_nothing() -> None:
    log = fresh()
    assert log.insert([], now=0.0) == []
    assert log.contiguous_seq == 0


@pytest.mark.parametrize("clash_seq", [1, 3])  # the first entry or one inside the held part
def test_conflict_raises_and_leaves_state_unchanged(clash_seq: int) -> None:
    log = fresh()
    log.insert(entries(1, 2, 3), now=0.0)
    before = (log.contiguous_seq, messages(log))
    batch = [Entry(s, "other" if s == clash_seq else f"m{s}") for s in range(1, 5)]
    with pytest.raises(LogMismatch, match=f"seq {clash_seq} is held") as caught:
        log.insert(batch, now=0.0)
    assert caught.value.extra["reason"] == "content"
    assert caught.value.status == 409
    # Nothing from the refused batch was applied, not even the entries before the clash.
    assert (log.contiguous_seq, messages(log)) == before
    log.insert(entries(3, 4), now=0.0)
    assert messages(log) == ["m1", "m2", "m3", "m4"]


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
    """Deliver runs of the master's entries in any order, with repeats: the visible log is always a
    prefix of the master's; a run that does not attach is refused and changes nothing."""
    master = [Entry(s, f"msg-{s}") for s in range(1, count + 1)]
    runs = st.tuples(st.integers(1, max(count, 1)), st.integers(0, 4))
    deliveries = data.draw(st.lists(runs, max_size=30)) if master else []
    log = fresh()
    for first, length in [*deliveries, (1, count)]:
        batch = master[first - 1 : first - 1 + length]
        try:
            log.insert(batch, now=0.0)
        except LogMismatch as exc:
            assert exc.extra["reason"] == "gap" and first > log.contiguous_seq + 1
        shown = messages(log)
        assert shown == [e.message for e in master[: len(shown)]]
        assert log.contiguous_seq == len(shown)
    assert messages(log) == [e.message for e in master]


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


@pytest.mark.parametrize("clash_seq", [1, 2])
def test_the_same_seq_from_another_epoch_is_not_a_duplicate(clash_seq: int) -> None:
    log = fresh()
    log.insert([Entry(1, "m1", epoch=2), Entry(2, "m2", epoch=2)], now=0.0)
    before = (log.contiguous_seq, log.bounds(), messages(log))
    batch = [Entry(s, f"m{s}", epoch=5 if s == clash_seq else 2) for s in range(clash_seq, 4)]
    with pytest.raises(LogMismatch, match=rf"seq {clash_seq} is held \(epoch 2\) with other content"):
        log.insert(batch, now=0.0)
    assert (log.contiguous_seq, log.bounds(), messages(log)) == before
    assert log.insert([Entry(1, "m1", epoch=2)], now=0.0) == [], "same seq, epoch and message: a duplicate"


def test_a_duplicate_is_recognised_by_seq_epoch_and_checksum() -> None:
    """The compact batch carries no keys: a held entry with a key is the same entry."""
    log = fresh()
    log.insert([Entry(1, "m1", key="a")], now=0.0)
    assert log.insert([Entry(1, "m1")], now=0.0) == []
    assert log.read(1, 1)[0].key == "a"


def test_a_batch_whose_epochs_go_down_changes_nothing() -> None:
    log = fresh()
    log.insert([Entry(1, "a", epoch=3)], now=0.0)
    with pytest.raises(LogConflict, match="below the epoch 3"):
        log.insert([Entry(2, "b", epoch=3), Entry(3, "c", epoch=2)], now=0.0)
    assert (log.contiguous_seq, log.bounds()) == (1, [(3, 1)])


def test_insert_keeps_the_epoch_index_and_the_entry_whole() -> None:
    log = fresh()
    batch = [
        Entry(1, "a", epoch=2),
        Entry(2, "", epoch=4, kind=Kind.EPOCH_START),
        Entry(3, "c", 9.0, 4, Kind.MESSAGE, "k3"),
    ]
    joined = log.insert(batch, now=6.0)
    assert joined == [
        Entry(1, "a", 6.0, 2),
        Entry(2, "", 6.0, 4, Kind.EPOCH_START),
        Entry(3, "c", 6.0, 4, Kind.MESSAGE, "k3"),  # stored_at: when it arrived here
    ]
    assert log.bounds() == [(2, 1), (4, 2)]
    assert log.last_position() == Position(4, 3)


def test_truncate_after_forgets_the_suffix_and_its_epochs() -> None:
    log = fresh()
    log.insert([Entry(s, f"m{s}", epoch=1 if s < 3 else 2) for s in (1, 2, 3, 4)], now=0.0)
    log.truncate_after(2)
    assert (log.contiguous_seq, log.bounds()) == (2, [(1, 1)])
    assert log.insert([Entry(3, "new", epoch=3)], now=0.0) == [Entry(3, "new", 0.0, 3)]
    log.truncate_after(10)  # past the end: nothing
    assert log.contiguous_seq == 3
    with pytest.raises(ValueError):
        log.truncate_after(-1)


def test_learned_entries_keep_everything_and_must_follow_the_log() -> None:
    log = fresh()
    log.append(["a"], now=1.0)
    learned = [Entry(2, "b", 7.0, 1, Kind.MESSAGE, "k"), Entry(3, "", 8.0, 2, Kind.EPOCH_START)]
    with pytest.raises(ValueError, match="start at seq 3, not 2"):
        log.learn(learned[1:])
    with pytest.raises(ValueError, match="contiguous"):
        log.learn([learned[0], Entry(4, "d")])
    assert log.contiguous_seq == 1
    assert log.learn(learned) == learned
    assert log.read(2, 2) == learned, "seq, epoch, stored_at, kind and key as learned"
    assert log.bounds() == [(1, 1), (2, 3)]

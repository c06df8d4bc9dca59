"""Epoch boundaries and the match point of two logs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replog.core.epochs import BOUNDS_SENT, EMPTY, EpochIndex, Position, at_least_as_up_to_date, match_point


def index_of(epochs: list[int]) -> EpochIndex:
    """The index of a log whose entry seq i+1 has epoch epochs[i]."""
    index = EpochIndex()
    for seq, epoch in enumerate(epochs, start=1):
        index.note(seq, epoch)
    return index


def test_boundaries_record_each_run_of_one_epoch() -> None:
    index = index_of([1, 1, 1, 2, 2, 5])
    assert index.bounds() == [(1, 1), (2, 4), (5, 6)]
    assert [index.epoch_at(s) for s in range(0, 7)] == [0, 1, 1, 1, 2, 2, 5]
    assert index.last_epoch == 5
    assert index.bounds(newest=2) == [(2, 4), (5, 6)]
    assert index.bounds(newest=0) == []


def test_a_lower_epoch_is_refused_and_changes_nothing() -> None:
    index = index_of([1, 2])
    with pytest.raises(ValueError, match="below the log's epoch"):
        index.note(3, 1)
    assert index.bounds() == [(1, 1), (2, 2)]


def test_note_all_checks_everything_before_changing_anything() -> None:
    index = index_of([1])
    with pytest.raises(ValueError):
        index.note_all([(2, 2), (3, 3), (4, 1)])
    assert index.bounds() == [(1, 1)]
    index.note_all([(2, 2), (3, 3)])
    assert index.bounds() == [(1, 1), (2, 2), (3, 3)]


def test_truncate_forgets_boundaries_past_the_new_end() -> None:
    index = index_of([1, 1, 2, 2, 3])
    index.truncate_after(3)
    assert index.bounds() == [(1, 1), (2, 3)]
    index.truncate_after(2)
    assert index.bounds() == [(1, 1)]
    index.note(3, 4)
    assert index.bounds() == [(1, 1), (4, 3)]
    index.truncate_after(0)
    assert index.bounds() == [] and index.last_epoch == 0


def test_positions_compare_as_raft_does() -> None:
    assert Position(2, 1) > Position(1, 100)
    assert Position(2, 5) > Position(2, 4)
    assert at_least_as_up_to_date(Position(2, 5), Position(2, 5))
    assert not at_least_as_up_to_date(Position(1, 9), Position(2, 1))
    assert at_least_as_up_to_date(Position(1, 1), EMPTY)


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        ([1, 1, 1], [1, 1, 1], 3),  # identical
        ([1, 1, 1, 1], [1, 1], 2),  # they are behind
        ([1, 1], [1, 1, 1, 1], 2),  # they are ahead (old master's unreplicated suffix)
        ([1, 1, 2, 2], [1, 1, 1, 1, 1], 2),  # diverged at seq 3
        ([1, 1, 3, 3], [1, 1, 2, 2, 2], 2),  # diverged, different later epochs
        ([], [1, 1], 0),
        ([1, 2, 3], [], 0),
        ([1, 2, 2, 4], [1, 2, 3, 3], 2),
    ],
)
def test_match_point(ours: list[int], theirs: list[int], expected: int) -> None:
    them = index_of(theirs)
    assert match_point(index_of(ours), len(ours), them.bounds(), len(theirs)) == expected


def test_match_point_with_only_the_newest_boundaries_gives_a_candidate_below_them() -> None:
    theirs = [1, 2, 3, 4, 5]
    ours = [1, 2, 6, 6, 6]  # agree up to 2
    them = index_of(theirs)
    # they sent only boundaries from seq 4 on: nothing known agrees, so ask just below (3)...
    assert match_point(index_of(ours), 5, them.bounds(newest=2), 5) == 3
    # ...and with boundaries from seq 2 on, the true point is found.
    assert match_point(index_of(ours), 5, them.bounds(newest=4), 5) == 2
    assert BOUNDS_SENT >= 16


epochs_list = st.lists(st.integers(1, 4), max_size=30).map(sorted)


@given(
    common=epochs_list,
    ours_tail=st.lists(st.integers(0, 3), max_size=10),
    theirs_tail=st.lists(st.integers(0, 3), max_size=10),
)
def test_match_point_finds_the_true_common_prefix(
    common: list[int], ours_tail: list[int], theirs_tail: list[int]
) -> None:
    """Two logs that share a prefix and then went separate ways in separate epochs (as two masters
    of different epochs would write them) agree exactly up to the end of the shared prefix."""
    base = common[-1] if common else 1
    ours = common + sorted(base + 1 + 2 * e for e in ours_tail)  # odd offsets: our epochs
    theirs = common + sorted(base + 2 + 2 * e for e in theirs_tail)  # even offsets: theirs
    them = index_of(theirs)
    assert match_point(index_of(ours), len(ours), them.bounds(), len(theirs)) == len(common)

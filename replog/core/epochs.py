"""Epoch bookkeeping and log matching: pure rules, no I/O.

Every entry records the epoch of the master that appended it, and epochs never decrease along a
log, so a log's epochs are a step function described by its boundaries: `(epoch, first_seq)` for
each run of entries of one epoch. Raft's log matching property holds for replog's logs: two logs
that hold the same (seq, epoch) are identical up to seq. So the point where two logs stop
agreeing can be found from their boundaries alone, in one round trip, not one per entry.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# How many of its newest boundaries a node sends when it refuses a batch; older ones are found by
# another round trip (each round moves below the oldest boundary sent).
BOUNDS_SENT = 64


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in a log: (epoch, seq) of an entry, ordered the way Raft compares logs.

    A log whose last entry has a higher epoch is more up to date; with equal epochs, the longer
    one is. (0, 0) is the empty log."""

    epoch: int
    seq: int


EMPTY = Position(0, 0)


@dataclass(frozen=True, slots=True)
class Vote:
    """The vote a node gave in one epoch: at most one candidate per epoch, kept durably."""

    epoch: int
    candidate: str


def at_least_as_up_to_date(candidate: Position, voter: Position) -> bool:
    """Raft §5.4.1: may a node whose log ends at `voter` vote for one whose log ends at `candidate`?"""
    return candidate >= voter


class EpochIndex:
    """The epoch boundaries of one log: which epoch each seq was appended in.

    Boundaries are `(epoch, first_seq)` pairs, strictly increasing in both. The index does not
    know where the log ends: callers ask only about seqs their log holds."""

    def __init__(self, bounds: Iterable[tuple[int, int]] = ()) -> None:
        self._epochs: list[int] = []
        self._firsts: list[int] = []
        for epoch, first in bounds:
            self.note(first, epoch)

    def __len__(self) -> int:
        return len(self._epochs)

    def bounds(self, newest: int | None = None) -> list[tuple[int, int]]:
        """The boundaries as (epoch, first_seq), oldest first; only the `newest` n if given."""
        pairs = list(zip(self._epochs, self._firsts, strict=True))
        return pairs if newest is None else pairs[-newest:] if newest > 0 else []

    @property
    def last_epoch(self) -> int:
        """The epoch of the newest boundary (0 for an empty log)."""
        return self._epochs[-1] if self._epochs else 0

    def epoch_at(self, seq: int) -> int:
        """The epoch of the entry at seq (0 for seq 0, the empty prefix)."""
        if seq < 1:
            return 0
        index = bisect_right(self._firsts, seq) - 1
        if index < 0:
            raise ValueError(f"seq {seq} is before the first boundary ({self._firsts[0]})")
        return self._epochs[index]

    def note(self, seq: int, epoch: int) -> None:
        """An entry of `epoch` was appended at `seq` (after every entry the index already knows)."""
        if epoch < 1 or seq < 1:
            raise ValueError(f"an entry needs seq >= 1 and epoch >= 1, got seq {seq} epoch {epoch}")
        if self._epochs:
            if epoch < self._epochs[-1]:
                raise ValueError(f"epoch {epoch} at seq {seq} is below the log's epoch {self._epochs[-1]}")
            if seq <= self._firsts[-1] and epoch != self._epochs[-1]:
                raise ValueError(f"seq {seq} is not after the last boundary at seq {self._firsts[-1]}")
            if epoch == self._epochs[-1]:
                return
        self._epochs.append(epoch)
        self._firsts.append(seq)

    def note_all(self, entries: Iterable[tuple[int, int]]) -> None:
        """`note` for each (seq, epoch), checking all first so a bad one changes nothing."""
        pending = list(entries)
        trial = EpochIndex(self.bounds())
        for seq, epoch in pending:
            trial.note(seq, epoch)
        self._epochs, self._firsts = trial._epochs, trial._firsts

    def truncate_after(self, seq: int) -> None:
        """Forget every boundary past seq: the log now ends at seq."""
        keep = bisect_right(self._firsts, seq)
        del self._epochs[keep:]
        del self._firsts[keep:]


def match_point(ours: EpochIndex, ours_last: int, theirs: Sequence[tuple[int, int]], theirs_last: int) -> int:
    """The highest seq both logs hold with the same epoch, as far as `theirs` tells.

    `theirs` may be only the newest boundaries of the other log; seqs below its oldest one are
    unknown. If the logs agree nowhere in the known range, the answer is the seq just below it: a
    candidate the other node will confirm or refuse (with older boundaries) on the next batch, so
    correctness never rests on this function, only the number of round trips does.
    """
    other = EpochIndex(theirs)
    lowest_known = theirs[0][1] if theirs else theirs_last + 1
    top = min(ours_last, theirs_last)
    candidates = {top} | {first - 1 for _, first in theirs} | {first - 1 for _, first in ours.bounds()}
    for seq in sorted((c for c in candidates if lowest_known <= c <= top), reverse=True):
        if seq >= 1 and ours.epoch_at(seq) == other.epoch_at(seq):
            return seq
    return max(0, min(lowest_known - 1, top))


def next_term(epoch: int, vote: Vote | None, new_epoch: int, vote_for: str | None) -> tuple[int, Vote | None]:
    """The (epoch, vote) a node holds after being asked to save (new_epoch, vote_for).

    Epochs never decrease (ValueError). A vote is given once per epoch: voting again in the same
    epoch for someone else is refused (ValueError); `vote_for` None keeps a vote already given in
    `new_epoch`. Moving to a higher epoch forgets the old vote."""
    if new_epoch < epoch:
        raise ValueError(f"epoch {new_epoch} is below this node's epoch {epoch}; epochs never decrease")
    held = vote if vote is not None and vote.epoch == new_epoch else None
    if vote_for is None:
        return new_epoch, held
    if held is not None and held.candidate != vote_for:
        raise ValueError(
            f"already voted for {held.candidate} in epoch {new_epoch}; cannot vote for {vote_for}"
        )
    return new_epoch, Vote(new_epoch, vote_for)

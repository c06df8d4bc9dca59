"""The ordered, idempotent log: pure logic, no threads, no I/O, no clock.

Entries 1..k (k = `contiguous_seq`) live in a `Prefix`, an append-only store that may be a list or a
file; their epochs in an `EpochIndex`. A secondary takes a batch only if it attaches to its log
(`core.matching`: the entry before the batch is held, same epoch and checksum), so nothing is ever
held past a gap. Applying an entry twice is a no-op; the same seq with another epoch or another
message is refused (409 `log_mismatch`) before anything changes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Protocol

from replog.core.entry import Entry, NewEntry
from replog.core.epochs import BOUNDS_SENT, EpochIndex, Position
from replog.core.errors import LogConflict, LogIdMismatch, LogMismatch
from replog.core.matching import (
    NOTHING,
    Attach,
    BatchHead,
    Fingerprint,
    Mismatch,
    Reason,
    Refuse,
    TruncateAfter,
    Verdict,
    check_batch,
    cluster_mode,
    static_mode,
)


class Prefix(Protocol):
    """Append-only storage of the contiguous entries 1..len(prefix)."""

    def __len__(self) -> int: ...

    def get(self, seq: int) -> Entry: ...

    def extend(self, entries: Sequence[Entry]) -> None: ...

    def read(self, from_seq: int, max_count: int, max_bytes: int) -> list[Entry]: ...

    def truncate(self, seq: int) -> None:
        """Forget every entry after seq (in memory; a file's bytes are its owner's to cut)."""
        ...


class MemoryPrefix:
    """A `Prefix` held in a list: the in-memory log."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, seq: int) -> Entry:
        return self._entries[seq - 1]

    def extend(self, entries: Sequence[Entry]) -> None:
        self._entries.extend(entries)

    def read(self, from_seq: int, max_count: int, max_bytes: int) -> list[Entry]:
        return cap_bytes(self._entries[from_seq - 1 : from_seq - 1 + max_count], max_bytes)

    def truncate(self, seq: int) -> None:
        del self._entries[seq:]


def cap_bytes(entries: list[Entry], max_bytes: int) -> list[Entry]:
    """Keep a leading run of entries whose messages fit in max_bytes (always at least one)."""
    total = 0
    for index, entry in enumerate(entries):
        total += len(entry.message) + 32
        if total > max_bytes and index > 0:
            return entries[:index]
    return entries


def check_log_id(held: str | None, incoming: str) -> bool:
    """Refuse another cluster's log. True when nothing is held yet: the caller (the store, which owns
    the id and its durability) then adopts `incoming`. Decides only; changes nothing."""
    if held is None:
        return True
    if incoming != held:
        raise LogIdMismatch(
            f"batch is for log {incoming} but this node holds log {held}",
            expected_log_id=held,
            got_log_id=incoming,
        )
    return False


class OrderedLog:
    """Total order and exactly-once application over a `Prefix`, with its epoch boundaries.

    Which log it is (`log_id`) is the store's to know: see `check_log_id`. `epochs` describes the
    prefix's entries (recovery builds it from the records); the log keeps it in step on every change.
    """

    def __init__(self, prefix: Prefix, epochs: EpochIndex | None = None) -> None:
        self._prefix = prefix
        self._epochs = epochs if epochs is not None else EpochIndex()
        # The last entry, when known: a batch nearly always attaches right after it, and reading it
        # back from a disk prefix for every batch costs more than the rest of the check.
        self._last: Entry | None = None

    @property
    def contiguous_seq(self) -> int:
        """Highest seq such that 1..seq are all held: what a node shows and acks."""
        return len(self._prefix)

    @property
    def last_epoch(self) -> int:
        """The epoch of the last entry held (0 for an empty log)."""
        return self._epochs.last_epoch

    def last_position(self) -> Position:
        """(epoch, seq) of the last entry held; (0, 0) for an empty log."""
        return Position(self._epochs.last_epoch, self.contiguous_seq)

    def epoch_at(self, seq: int) -> int:
        """The epoch of the entry at seq (0 for seq 0); ValueError for a seq this log does not hold."""
        if not 0 <= seq <= self.contiguous_seq:
            raise ValueError(f"seq {seq} is not held (the log ends at {self.contiguous_seq})")
        return self._epochs.epoch_at(seq)

    def bounds(self, newest: int | None = None) -> list[tuple[int, int]]:
        """The epoch boundaries (epoch, first_seq), oldest first; only the `newest` n if given."""
        return self._epochs.bounds(newest)

    def append(self, items: Sequence[str | NewEntry], now: float, epoch: int | None = None) -> list[Entry]:
        """Master only: give the items the next seqs, in one step, in `epoch` (default: the log's
        last epoch, at least 1). A master appends in its own epoch, never below the log's last."""
        if epoch is None:
            epoch = max(1, self._epochs.last_epoch)
        if epoch < max(1, self._epochs.last_epoch):
            raise ValueError(f"cannot append in epoch {epoch}: the log is at epoch {self._epochs.last_epoch}")
        first = self.contiguous_seq + 1
        entries = [
            Entry(first + i, item, now, epoch)
            if isinstance(item, str)  # the common case, kept cheap: this is every append's path
            else Entry(first + i, item.message, now, epoch, item.kind, item.key)
            for i, item in enumerate(items)
        ]
        if entries:
            self._prefix.extend(entries)
            self._last = entries[-1]
            if epoch != self._epochs.last_epoch:
                self._epochs.note(first, epoch)
        return entries

    # --- a secondary's batches (issue 11 C7) ------------------------------------------------------
    def fingerprint(self, seq: int) -> Fingerprint:
        """(seq, epoch, crc) of a held entry; `NOTHING` for seq 0."""
        if seq == 0:
            return NOTHING
        last = self._last
        return Fingerprint.of(last if last is not None and last.seq == seq else self._prefix.get(seq))

    def check(self, head: BatchHead, entries: Sequence[Entry]) -> Verdict:
        """The consistency check of a batch against this log (`core.matching.check_batch`); decides
        only. ValueError if the entries do not run contiguously from head.prev_seq + 1."""
        if any(e.seq != head.prev_seq + 1 + i for i, e in enumerate(entries)):
            raise ValueError(f"a batch's entries must run contiguously from seq {head.prev_seq + 1}")
        last = self.contiguous_seq
        # Only entries this log may already hold are fingerprinted (a crc each): usually none.
        overlap = [Fingerprint.of(e) for e in entries[: max(0, last - head.prev_seq)]]
        return check_batch(head, overlap, last, self.fingerprint)

    def mismatch(self, refusal: Refuse) -> LogMismatch:
        """The error that refuses a batch: why, and where this log stands."""
        where = Mismatch(
            refusal.reason, self.contiguous_seq, self.last_epoch, tuple(self.bounds(BOUNDS_SENT))
        )
        return LogMismatch(refusal.detail, **where.to_wire())

    def decide(
        self, head: BatchHead | None, entries: Sequence[Entry], *, rollback: bool = False
    ) -> Attach | TruncateAfter:
        """Secondary: whether a batch attaches as is (`Attach`) or, with `rollback` (cluster mode),
        after this log's diverged suffix is removed (`TruncateAfter`, see `matching.cluster_mode`);
        decides only. Static mode never removes anything (`matching.static_mode`): a batch that does
        not attach, or that differs from what is held, raises `LogMismatch`. Without a head (a local
        caller that trusts the batch's start) the batch attaches right after the entry before its
        first."""
        if head is None:
            if not entries:
                return Attach(0)
            prev = entries[0].seq - 1
            if prev > self.contiguous_seq:
                detail = f"seq {entries[0].seq} is past this log's last seq {self.contiguous_seq} + 1"
                raise self.mismatch(Refuse(Reason.GAP, detail))
            head = BatchHead.after(self.fingerprint(prev), self.last_epoch)
        verdict = self.check(head, entries)
        if rollback:
            verdict = cluster_mode(verdict, head, self.last_epoch)
        else:
            verdict = static_mode(verdict, self.fingerprint)
        if isinstance(verdict, Refuse):
            raise self.mismatch(verdict)
        return verdict

    @staticmethod
    def joining(verdict: Attach | TruncateAfter, entries: Sequence[Entry], now: float) -> list[Entry]:
        """The entries of a batch that join the log once `verdict` is carried out (the held
        duplicates before `skip` left out), `stored_at` set to now."""
        return [_stamped(e, now) for e in entries[verdict.skip :]]

    def plan(self, head: BatchHead | None, entries: Sequence[Entry], now: float) -> list[Entry]:
        """Secondary, static mode: the entries of a batch this log would append (`decide` without
        rollback, then `joining`); decides only."""
        return self.joining(self.decide(head, entries), entries, now)

    def attach(self, head: BatchHead | None, entries: Sequence[Entry], now: float) -> list[Entry]:
        """`plan` and `extend`: apply a batch; return the entries that joined the log. Held
        duplicates are skipped; a refused batch changes nothing."""
        return self.extend(self.plan(head, entries, now))

    def insert(self, entries: Iterable[Entry], now: float) -> list[Entry]:
        """`attach` without a head: for local callers (tests, tools) that trust the batch's start.
        Entries past a gap are refused (`LogMismatch`, reason gap), never held."""
        return self.attach(None, list(entries), now)

    def learn(self, entries: Sequence[Entry]) -> list[Entry]:
        """A master that restarted behind its secondaries takes the entries it lost from one of them
        (issue 11 C8), as they are: seq, epoch, stored_at, kind and key. They must follow this log."""
        if entries and entries[0].seq != self.contiguous_seq + 1:
            raise ValueError(f"learned entries start at seq {entries[0].seq}, not {self.contiguous_seq + 1}")
        if any(b.seq != a.seq + 1 for a, b in itertools.pairwise(entries)):
            raise ValueError("learned entries must have contiguous seqs")
        return self.extend(list(entries))

    def extend(self, joined: list[Entry]) -> list[Entry]:
        """Append entries that follow the log (from `plan`, or learned); their epochs must not go
        down along it (`LogConflict`, nothing changed)."""
        last = self._epochs.last_epoch
        changes: list[tuple[int, int]] = []  # (seq, epoch) where the epoch changes: the index's news
        for entry in joined:
            if entry.epoch != last:
                if entry.epoch < last:
                    raise LogConflict(
                        f"seq {entry.seq} has epoch {entry.epoch}, below the epoch {last} held before it",
                        seq=entry.seq,
                    )
                changes.append((entry.seq, entry.epoch))
                last = entry.epoch
        if joined:
            self._prefix.extend(joined)  # first: a failed write changes nothing else
            self._last = joined[-1]
            self._epochs.note_all(changes)
        return joined

    def truncate_after(self, seq: int) -> None:
        """Forget every entry after seq. The caller saved them first."""
        if seq < 0:
            raise ValueError(f"cannot truncate after seq {seq}")
        if seq < self.contiguous_seq:
            self._prefix.truncate(seq)
            self._epochs.truncate_after(seq)
            self._last = None

    def read(self, from_seq: int, max_count: int, max_bytes: int = 1 << 62) -> list[Entry]:
        """Visible entries from from_seq on, at most max_count and about max_bytes."""
        if from_seq < 1 or max_count < 1 or from_seq > self.contiguous_seq:
            return []
        return self._prefix.read(from_seq, max_count, max_bytes)


def _stamped(entry: Entry, now: float) -> Entry:
    """The entry as this node stores it: `stored_at` is the time it arrived here."""
    return Entry(entry.seq, entry.message, now, entry.epoch, entry.kind, entry.key)

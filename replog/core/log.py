"""The ordered, idempotent log: pure logic, no threads, no I/O, no clock.

Entries 1..k (k = `contiguous_seq`) live in a `Prefix`, an append-only store that may be a list or a
file; their epochs in an `EpochIndex`. An entry that arrives past a gap waits in `pending` (bounded
in bytes) and is never shown or acked until the gap fills. Applying an entry twice is a no-op; the
same seq with another epoch or another message is refused before anything changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from replog.core.entry import Entry, NewEntry, entry_bytes
from replog.core.epochs import EpochIndex, Position
from replog.core.errors import LogConflict, LogIdMismatch

DEFAULT_PENDING_BYTES = 64 << 20


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

    def __init__(
        self, prefix: Prefix, epochs: EpochIndex | None = None, max_pending_bytes: int = DEFAULT_PENDING_BYTES
    ) -> None:
        self._prefix = prefix
        self._epochs = epochs if epochs is not None else EpochIndex()
        self._pending: dict[int, Entry] = {}
        self._pending_bytes = 0
        self._max_pending_bytes = max_pending_bytes

    @property
    def contiguous_seq(self) -> int:
        """Highest seq such that 1..seq are all held: what a node shows and acks."""
        return len(self._prefix)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        """Memory held by entries past a gap (`entry_bytes` each); at most `max_pending_bytes`."""
        return self._pending_bytes

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
            if epoch != self._epochs.last_epoch:
                self._epochs.note(first, epoch)
        return entries

    def insert(self, entries: Iterable[Entry], now: float) -> list[Entry]:
        """Secondary: apply a batch idempotently; return the entries that joined the prefix.

        Checks everything first, so a refused batch changes nothing: the same seq held with another
        epoch or content, or entries whose epochs would go down along the log, raise `LogConflict`.
        Entries past a gap wait in `pending` while it stays under `max_pending_bytes`; those that do
        not fit are dropped (the master resends from the acked seq)."""
        incoming = list(entries)
        for entry in incoming:
            self._check_no_conflict(entry)
        top = self.contiguous_seq
        fresh = {e.seq: e for e in incoming if e.seq > top and e.seq not in self._pending}
        joined: list[Entry] = []
        next_seq = top + 1
        while True:
            arrived = fresh.pop(next_seq, None)
            held = _stamped(arrived, now) if arrived is not None else self._pending.get(next_seq)
            if held is None:
                break
            joined.append(held)
            next_seq += 1
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
            self._epochs.note_all(changes)
        for entry in joined:
            if self._pending.pop(entry.seq, None) is not None:
                self._pending_bytes -= entry_bytes(entry)
        for entry in fresh.values():
            size = entry_bytes(entry)
            if self._pending_bytes + size <= self._max_pending_bytes:
                self._pending[entry.seq] = _stamped(entry, now)
                self._pending_bytes += size
        return joined

    def _check_no_conflict(self, entry: Entry) -> None:
        if entry.seq <= self.contiguous_seq:
            held = self._prefix.get(entry.seq)
        elif entry.seq in self._pending:
            held = self._pending[entry.seq]
        else:
            return
        if held.epoch != entry.epoch:
            raise LogConflict(
                f"seq {entry.seq} is held from epoch {held.epoch}, this one is from epoch {entry.epoch}",
                seq=entry.seq,
            )
        if (held.message, held.kind, held.key) != (entry.message, entry.kind, entry.key):
            raise LogConflict(
                f"seq {entry.seq} is already held with another message; refusing to overwrite",
                seq=entry.seq,
            )

    def truncate_after(self, seq: int) -> None:
        """Forget every entry after seq, and everything held past a gap. The caller saved them first."""
        if seq < 0:
            raise ValueError(f"cannot truncate after seq {seq}")
        if seq < self.contiguous_seq:
            self._prefix.truncate(seq)
            self._epochs.truncate_after(seq)
        self._pending.clear()
        self._pending_bytes = 0

    def read(self, from_seq: int, max_count: int, max_bytes: int = 1 << 62) -> list[Entry]:
        """Visible entries from from_seq on, at most max_count and about max_bytes."""
        if from_seq < 1 or max_count < 1 or from_seq > self.contiguous_seq:
            return []
        return self._prefix.read(from_seq, max_count, max_bytes)


def _stamped(entry: Entry, now: float) -> Entry:
    """The entry as this node stores it: `stored_at` is the time it arrived here."""
    return Entry(entry.seq, entry.message, now, entry.epoch, entry.kind, entry.key)

"""The ordered, idempotent log: pure logic, no threads, no I/O, no clock.

Entries 1..k (k = `contiguous_seq`) live in a `Prefix`, an append-only store that may be a list or a
file. An entry that arrives past a gap waits in `pending` and is never shown or acked until the gap
fills. Applying an entry twice is a no-op; the same seq with another message is refused before
anything changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from replog.core.errors import LogConflict, LogIdMismatch
from replog.core.wire import Entry

MAX_PENDING = 100_000


class Prefix(Protocol):
    """Append-only storage of the contiguous entries 1..len(prefix)."""

    def __len__(self) -> int: ...

    def get(self, seq: int) -> Entry: ...

    def extend(self, entries: Sequence[Entry]) -> None: ...

    def read(self, from_seq: int, max_count: int, max_bytes: int) -> list[Entry]: ...


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
    """Total order and exactly-once application over a `Prefix`. Which log it is (`log_id`) is the
    store's to know: see `check_log_id`."""

    def __init__(self, prefix: Prefix) -> None:
        self._prefix = prefix
        self._pending: dict[int, Entry] = {}

    @property
    def contiguous_seq(self) -> int:
        """Highest seq such that 1..seq are all held: what a node shows and acks."""
        return len(self._prefix)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def append(self, messages: Sequence[str], now: float) -> list[Entry]:
        """Master only: give the messages the next seqs, in one step."""
        first = self.contiguous_seq + 1
        entries = [Entry(first + i, m, now) for i, m in enumerate(messages)]
        self._prefix.extend(entries)
        return entries

    def insert(self, entries: Iterable[Entry], now: float) -> list[Entry]:
        """Secondary: apply a batch idempotently; return the entries that joined the prefix."""
        incoming = list(entries)
        for entry in incoming:
            self._check_no_conflict(entry)
        top = self.contiguous_seq
        for entry in incoming:
            if entry.seq > top and entry.seq not in self._pending:
                if len(self._pending) >= MAX_PENDING:
                    break  # dropped entries come back: the master resends from our acked seq
                self._pending[entry.seq] = Entry(entry.seq, entry.message, now)
        joined: list[Entry] = []
        next_seq = top + 1
        while next_seq in self._pending:
            joined.append(self._pending.pop(next_seq))
            next_seq += 1
        if joined:
            self._prefix.extend(joined)
        return joined

    def _check_no_conflict(self, entry: Entry) -> None:
        if entry.seq <= self.contiguous_seq:
            held = self._prefix.get(entry.seq).message
        elif entry.seq in self._pending:
            held = self._pending[entry.seq].message
        else:
            return
        if held != entry.message:
            raise LogConflict(
                f"seq {entry.seq} is already held with another message; refusing to overwrite",
                seq=entry.seq,
            )

    def read(self, from_seq: int, max_count: int, max_bytes: int = 1 << 62) -> list[Entry]:
        """Visible entries from from_seq on, at most max_count and about max_bytes."""
        if from_seq < 1 or max_count < 1 or from_seq > self.contiguous_seq:
            return []
        return self._prefix.read(from_seq, max_count, max_bytes)

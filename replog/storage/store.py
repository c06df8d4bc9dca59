"""Thread-safe log stores: the shell around the pure `OrderedLog` that request threads share.

A store owns one lock. The master appends under it; a secondary applies batches under it. A store
reports its *stored* seq (durable, for a disk store) to a listener outside the lock; the master
counts itself toward w, and replicates, only up to that seq. A store also keeps the node's term
(epoch and vote), the epoch of every entry, and the entries it rolled back.

A disk store may *fail* (a full disk): it then refuses writes, drops what was not yet durable (so
those seqs are reused: they were never acknowledged) and starts a new `generation`; it reports the
failure and the recovery to its status listener.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from replog.core.dedup import DedupWindow, KeyedAppend, WindowPolicy
from replog.core.entry import Entry, NewEntry
from replog.core.epochs import Position, Vote, next_term
from replog.core.errors import NotMaster, StaleEpoch, StorageUnavailable
from replog.core.log import MemoryPrefix, OrderedLog, check_log_id
from replog.core.matching import BatchHead, TruncateAfter

log = logging.getLogger(__name__)

StoredListener = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class StorageStatus:
    """Whether the store takes writes. `generation` grows by one at each failure that dropped (or
    might have dropped) entries not yet durable; `durable_seq` is the stored seq at that moment."""

    ok: bool
    reason: str | None
    generation: int
    durable_seq: int


StatusListener = Callable[[StorageStatus], None]


class Store(Protocol):
    """What master and secondary nodes need from their log."""

    @property
    def log_id(self) -> str | None: ...

    @property
    def stored_seq(self) -> int:
        """Highest seq such that 1..seq are held (and durable, for a disk store)."""
        ...

    @property
    def epoch(self) -> int:
        """This node's epoch (term): durable, never decreasing, at least 1."""
        ...

    @property
    def vote(self) -> Vote | None:
        """The vote this node gave in its current epoch, if any."""
        ...

    @property
    def generation(self) -> int:
        """See `StorageStatus.generation`; pass it to `append` to learn your entries' generation."""
        ...

    @property
    def rolled_back_entries(self) -> int:
        """Entries ever removed by `truncate_after` (counted in the rollback file, across restarts)."""
        ...

    def status(self) -> StorageStatus: ...

    def set_listener(self, listener: StoredListener) -> None: ...

    def add_watcher(self, watcher: StoredListener) -> None:
        """Also told each new stored seq, after the listener, whoever the listener is (the node's
        followers' `SeqWatch.poke`: it must return at once)."""
        ...

    def set_status_listener(self, listener: StatusListener) -> None:
        """Told (outside every lock) when the store fails and when it recovers."""
        ...

    def save_term(self, epoch: int, vote_for: str | None, *, if_last: Position | None = None) -> None:
        """Adopt epoch (and a vote in it) durably before returning, under every fsync policy.
        ValueError for a lower epoch or a second vote in one epoch (see `core.epochs.next_term`),
        and, given `if_last`, when the log no longer ends there (see `check_unmoved`)."""
        ...

    def last_position(self) -> Position:
        """(epoch, seq) of the last stored entry; (0, 0) for an empty log."""
        ...

    def epoch_at(self, seq: int) -> int:
        """The epoch of the entry held at seq (0 for seq 0); ValueError past the log's end."""
        ...

    def bounds(self, newest: int | None = None) -> list[tuple[int, int]]:
        """The log's epoch boundaries (epoch, first_seq), oldest first; the `newest` n if given."""
        ...

    def append(
        self, items: Sequence[str | NewEntry], *, generation: int | None = None, epoch: int | None = None
    ) -> list[Entry]:
        """Master: assign the next seqs atomically, in the store's epoch. Durability is reported via
        the listener. With `generation`, refuse (StorageUnavailable, nothing stored) unless the
        store is still in that generation, so the caller knows its entries' generation exactly.
        With `epoch` (cluster mode: the epoch its master role won), refuse (NotMaster, nothing
        stored) unless the store is still in that epoch: a deposed master never writes an entry
        tagged with an epoch it did not win."""
        ...

    def append_unique(
        self, items: Sequence[NewEntry], *, generation: int | None = None, epoch: int | None = None
    ) -> KeyedAppend:
        """Master: `append` for items that may carry idempotency keys. An item whose key the dedup
        window holds with the same message is not stored again (its seq is the original's); a key
        held with another message raises `IdempotencyKeyReused` and nothing is stored."""
        ...

    @property
    def keys_held(self) -> int:
        """Idempotency keys in the dedup window."""
        ...

    def apply(
        self, log_id: str, entries: Sequence[Entry], head: BatchHead | None = None, *, rollback: bool = False
    ) -> int:
        """Secondary: apply a batch that attaches after `head` (see `core.matching`), idempotently;
        return the stored seq once durable. Without a head (a local caller) the batch attaches right
        after the entry before its first. Refused with `LogMismatch`, changing nothing, otherwise.
        With `rollback` (cluster mode, a batch of an admitted master) a suffix that differs from the
        batch is first moved to the rollback file (as `truncate_after`, logged and counted)."""
        ...

    def learn(self, entries: Sequence[Entry]) -> int:
        """Master behind its secondaries (issue 11 C8): append entries learned from a peer as they
        are (seq, epoch, stored_at, kind, key), right after the log's end; fsynced under every
        policy before returning the stored seq."""
        ...

    def truncate_after(self, seq: int, reason: str) -> int:
        """Remove the entries after seq into the rollback file first; return how many."""
        ...

    def read(self, from_seq: int, max_count: int, max_bytes: int = ...) -> list[Entry]:
        """Stored entries from from_seq on."""
        ...

    def close(self) -> None: ...


def rollback_reason(verdict: TruncateAfter, head: BatchHead | None) -> str:
    """What the rollback file records as the reason of a rollback that log matching decided."""
    sender = f"the master of epoch {head.epoch}" if head is not None else "the batch"
    return f"diverged from {sender} at seq {verdict.seq + 1}"


def log_rollback(seq: int, count: int, reason: str) -> None:
    """The WARNING every rollback writes: which seqs, how many, why."""
    log.warning("rolled back seqs=%d..%d count=%d reason=%s", seq + 1, seq + count, count, reason)


def check_sender(head: BatchHead | None, held: int) -> None:
    """Under the store lock: a batch from the master of an epoch older than this node's is refused.

    A node adopts a newer epoch (to vote, or to stand) through `save_term` under the same lock, so
    once that is saved no batch of the old master lands, however long ago its call was admitted:
    the old master can never count this node's ack after the node gave its vote away (Raft: a
    follower of a newer term rejects the old leader's AppendEntries)."""
    if head is not None and head.epoch < held:
        raise StaleEpoch(
            f"a batch of epoch {head.epoch}, but this node is in epoch {held}; nothing was stored",
            epoch=held,
            master=None,
        )


def check_unmoved(if_last: Position | None, stored: Position, end: int) -> None:
    """Under the store lock: a vote is saved only if the log still ends where the vote was decided,
    with nothing written beyond it and not yet durable. Else a batch landed in between, and the
    candidate the vote compared with our log may lack an entry we are about to acknowledge."""
    if if_last is not None and (stored != if_last or end != stored.seq):
        raise ValueError(f"the log moved while the vote was decided ({if_last} -> {stored}, end {end})")


def check_epoch(wanted: int | None, held: int) -> None:
    """Under the store lock: an append fenced to epoch `wanted` is refused once the node moved on."""
    if wanted is not None and wanted != held:
        raise NotMaster(
            f"this node was master of epoch {wanted} but is now in epoch {held}; nothing was stored",
            master=None,
            epoch=held,
        )


class MemoryStore:
    """A log held in memory: fast, and forgotten on restart. It never fails; rolled-back entries are
    kept in memory (`rolled_back`), as a disk store keeps them in its rollback file."""

    def __init__(
        self,
        log_id: str | None = None,
        clock: Callable[[], float] = time.time,
        dedup: WindowPolicy | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._log = OrderedLog(MemoryPrefix())
        self._keys = DedupWindow(dedup)
        self._log_id = log_id  # adopted in `apply` only, under the lock
        self._clock = clock
        self._listener: StoredListener | None = None
        self._watchers: list[StoredListener] = []
        self._epoch = 1
        self._vote: Vote | None = None
        self.rolled_back: list[tuple[Entry, float, str]] = []

    @property
    def log_id(self) -> str | None:
        return self._log_id

    @property
    def stored_seq(self) -> int:
        return self._log.contiguous_seq

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def vote(self) -> Vote | None:
        return self._vote

    @property
    def generation(self) -> int:
        return 0

    @property
    def rolled_back_entries(self) -> int:
        return len(self.rolled_back)

    def status(self) -> StorageStatus:
        return StorageStatus(True, None, 0, self.stored_seq)

    def set_listener(self, listener: StoredListener) -> None:
        self._listener = listener

    def add_watcher(self, watcher: StoredListener) -> None:
        self._watchers.append(watcher)

    def _publish(self, seq: int, *, listener: bool = True) -> None:
        if listener and self._listener is not None:
            self._listener(seq)
        for watcher in self._watchers:
            watcher(seq)

    def set_status_listener(self, listener: StatusListener) -> None:
        """A memory store never fails: the listener is never called."""

    def save_term(self, epoch: int, vote_for: str | None, *, if_last: Position | None = None) -> None:
        with self._lock:
            last = self._log.last_position()
            check_unmoved(if_last, last, last.seq)
            self._epoch, self._vote = next_term(self._epoch, self._vote, epoch, vote_for)

    def last_position(self) -> Position:
        with self._lock:
            return self._log.last_position()

    def epoch_at(self, seq: int) -> int:
        with self._lock:
            return self._log.epoch_at(seq)

    def bounds(self, newest: int | None = None) -> list[tuple[int, int]]:
        with self._lock:
            return self._log.bounds(newest)

    def append(
        self, items: Sequence[str | NewEntry], *, generation: int | None = None, epoch: int | None = None
    ) -> list[Entry]:
        if generation not in (None, 0):
            raise StorageUnavailable(f"no such storage generation {generation}; nothing was stored")
        with self._lock:
            check_epoch(epoch, self._epoch)
            entries = self._log.append(items, self._clock(), self._epoch)
            self._keys.note(entries)
        if entries:
            self._publish(entries[-1].seq)
        return entries

    def append_unique(
        self, items: Sequence[NewEntry], *, generation: int | None = None, epoch: int | None = None
    ) -> KeyedAppend:
        if generation not in (None, 0):
            raise StorageUnavailable(f"no such storage generation {generation}; nothing was stored")
        with self._lock:
            check_epoch(epoch, self._epoch)
            now = self._clock()
            self._keys.expire(now)
            found = self._keys.plan([(item.message, item.key) for item in items], now)
            fresh = [item for item, held in zip(items, found, strict=True) if held is None]
            entries = self._log.append(fresh, now, self._epoch) if fresh else []
            self._keys.note(entries)
        if entries:
            self._publish(entries[-1].seq)
        return KeyedAppend.of(found, entries)

    @property
    def keys_held(self) -> int:
        return len(self._keys)

    def apply(
        self, log_id: str, entries: Sequence[Entry], head: BatchHead | None = None, *, rollback: bool = False
    ) -> int:
        removed: tuple[int, int, str] | None = None
        with self._lock:
            check_sender(head, self._epoch)
            adopt = check_log_id(self._log_id, log_id)
            now = self._clock()
            verdict = self._log.decide(head, entries, rollback=rollback)  # a refusal changes nothing
            if isinstance(verdict, TruncateAfter):
                reason = rollback_reason(verdict, head)
                removed = (verdict.seq, self._truncate_locked(verdict.seq, reason), reason)
            joined = self._log.extend(self._log.joining(verdict, entries, now))
            if adopt:
                self._log_id = log_id
            self._keys.expire(now)
            self._keys.note(joined)
            stored = self._log.contiguous_seq
        if removed is not None:
            log_rollback(removed[0], removed[1], f"{removed[2]} (in memory)")
        if joined or removed is not None:
            self._publish(stored, listener=False)  # followers wake on it
        return stored

    def learn(self, entries: Sequence[Entry]) -> int:
        with self._lock:
            joined = self._log.learn(entries)
            self._keys.expire(self._clock())
            self._keys.note(joined)  # learned keys still deduplicate (issue 13)
            seq = self._log.contiguous_seq
        if joined:
            self._publish(seq)
        return seq

    def truncate_after(self, seq: int, reason: str) -> int:
        with self._lock:
            count = self._truncate_locked(seq, reason)
        if count:
            log_rollback(seq, count, f"{reason} (in memory)")
        return count

    def _truncate_locked(self, seq: int, reason: str) -> int:
        top = self._log.contiguous_seq
        if seq >= top:
            return 0
        removed = self._log.read(seq + 1, top - seq)
        now = self._clock()
        self.rolled_back.extend((e, now, reason) for e in removed)
        self._log.truncate_after(seq)
        self._keys.forget_after(seq)  # their keys leave the dedup window: a retry stores them again
        return len(removed)

    def read(self, from_seq: int, max_count: int, max_bytes: int = 1 << 62) -> list[Entry]:
        with self._lock:
            return self._log.read(from_seq, max_count, max_bytes)

    def close(self) -> None:
        pass

"""A durable `Store`: one append-only record file plus small files in a data directory.

Layout: `entries.dat` (records of `replog.core.records`, seqs 1..k in order), `meta.json` (log id,
epoch and vote, replaced atomically, see `datadir`), `rollback.jsonl` (entries removed by a
truncation, see `rollback`), `LOCK` (flock: one process per directory). Writes go through group
commit (`commit`), which also says what each fsync policy can lose on a machine crash.

A full disk never lies (issue 11 C6): a failed write or fsync *fails* the store (`StorageFailure`):
entries not yet durable are dropped from memory (never acknowledged, replicated or readable, so
their seqs are reused), the file is cut back to the durable end, writes are refused with
`StorageUnavailable`, and the status listener hears it. The flusher then checks the disk every
`retry_s` (`failure.probe_disk`; after an fsync failure also `failure.verify_records`) and clears
the failure once it works: no restart needed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from replog.core.dedup import DedupWindow, KeyedAppend, WindowPolicy, rebuild
from replog.core.entry import Entry, NewEntry
from replog.core.epochs import Position, Vote
from replog.core.errors import ShuttingDown, StorageUnavailable, WritesInFlight
from replog.core.fsync import FsyncPolicy as FsyncPolicy  # noqa: PLC0414 -- re-exported for callers
from replog.core.log import OrderedLog, check_log_id
from replog.core.matching import BatchHead, TruncateAfter
from replog.core.records import CorruptLog as CorruptLog  # noqa: PLC0414 -- re-exported
from replog.storage.commit import GroupCommit
from replog.storage.datadir import DataDirInUseError as DataDirInUseError  # noqa: PLC0414 -- re-exported
from replog.storage.datadir import Meta, MetaFile, fsync_dir, lock_dir
from replog.storage.failure import StorageError as StorageError  # noqa: PLC0414 -- re-exported
from replog.storage.failure import StorageFailure, probe_disk, verify_records
from replog.storage.opening import open_log
from replog.storage.prefix import DiskPrefix
from replog.storage.rollback import RollbackFile
from replog.storage.store import (
    StatusListener,
    StorageStatus,
    StoredListener,
    check_epoch,
    check_sender,
    check_unmoved,
    rollback_reason,
)

log = logging.getLogger(__name__)

SyncFd = Callable[[int], None]
DEFAULT_SYNC: SyncFd = getattr(os, "fdatasync", os.fsync)  # an append's size change is data: enough
DEFAULT_CACHE_BYTES = 16 << 20  # as StorageConfig.cache_bytes: why there
ROLLBACK_PAGE = 10_000  # entries read and saved at a time when truncating a long suffix
REBUILD_PAGE = 10_000  # entries read at a time when rebuilding the dedup window at start


@dataclass(frozen=True, slots=True)
class _Written:
    """A write done under the store lock: the seq to wait for, in which generation, or its failure."""

    target: int
    generation: int
    failed: tuple[StorageUnavailable, StorageStatus] | None


@dataclass(frozen=True, slots=True)
class _Removed:
    """A rollback done under the store lock: the entries after `seq`, `count` of them, and the
    failure it caused if cutting the file failed (the entries are gone from the log either way)."""

    seq: int
    count: int
    reason: str
    status: StorageStatus | None


class DiskStore:
    """The durable `Store`: an `OrderedLog` over a `DiskPrefix`, with a group-commit flusher thread.

    Owners: this store alone holds the log id, epoch and vote and writes meta.json; its
    `StorageFailure` alone holds why the log refuses writes, and this store records into it.
    Locks: `_lock` (the store lock) orders seq assignment, writes, truncation and meta changes;
    `_work`/`_progress` share one state lock for the seqs below, never held during I/O.
    """

    def __init__(
        self, data_dir: Path, prefix: DiskPrefix, log: OrderedLog, meta: Meta, lock_fd: int, *,
        fsync: FsyncPolicy, fsync_interval_s: float, retry_s: float, clock: Callable[[], float],
        sync_fd: SyncFd,
    ) -> None:  # fmt: skip
        self.data_dir = data_dir
        self._prefix = prefix
        self._log = log
        self._meta = MetaFile(data_dir, meta, retry_s)  # changed only under the store lock
        self._rollback = RollbackFile(data_dir, sync_fd)
        self._failure = StorageFailure(prefix.path, retry_after_s=retry_s)
        self._lock_fd = lock_fd
        self._retry_s = retry_s
        self._fsync = fsync
        self._clock = clock
        self._sync_fd = sync_fd
        self._lock = threading.Lock()  # the store lock
        self._closed = False
        self._generation = 0  # +1 at each failure; changed under the store lock
        self._status_listener: StatusListener | None = None
        self._commit = GroupCommit(
            prefix, self._failure, policy=fsync, interval_s=fsync_interval_s, retry_s=retry_s,
            sync_fd=sync_fd, on_failure=lambda reason, verify: self._fail(reason, verify=verify),
            try_recover=self._try_recover,
        )  # fmt: skip
        self._flusher = self._commit.thread
        self._keys = DedupWindow()  # replaced by `open` with the window rebuilt from the log's tail
        self._listener: StoredListener | None = None
        self._watchers: list[StoredListener] = []

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        fsync: FsyncPolicy = FsyncPolicy.ALWAYS,
        fsync_interval_s: float = 0.005,
        new_log_id: str | None = None,
        clock: Callable[[], float] = time.time,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        retry_s: float = 1.0,
        sync_fd: SyncFd = DEFAULT_SYNC,
        dedup: WindowPolicy | None = None,
    ) -> DiskStore:
        """Open (recovering) or create the log in data_dir. new_log_id names a new master's log only.

        `cache_bytes` bounds the cache of recent entries; `retry_s` is how often a failed store
        checks whether the disk works again."""
        if not data_dir.is_dir():
            data_dir.mkdir(parents=True)
            fsync_dir(data_dir.parent)
        lock_fd = lock_dir(data_dir)
        try:
            opened = open_log(data_dir, cache_bytes, sync_fd, defer_writes=fsync is FsyncPolicy.ALWAYS)
        except BaseException:
            os.close(lock_fd)
            raise
        ordered = OrderedLog(opened.prefix, opened.epochs)
        store = cls(
            data_dir, opened.prefix, ordered, opened.meta, lock_fd, fsync=fsync,
            fsync_interval_s=fsync_interval_s, retry_s=retry_s, clock=clock, sync_fd=sync_fd,
        )  # fmt: skip
        store._rebuild_keys(dedup or WindowPolicy())
        if opened.meta.log_id is None and new_log_id is not None:  # named before its first entry
            try:
                with store._lock:
                    store._adopt(new_log_id)
            except BaseException:
                store.close()
                raise
        log.info(
            "log store opened dir=%s log_id=%s seq=%d epoch=%d rolled_back=%d fsync=%s",
            data_dir, store.log_id, len(opened.prefix), store.epoch, store.rolled_back_entries, fsync.value,
        )  # fmt: skip
        return store

    # --- what the node reads --------------------------------------------------------------------
    @property
    def log_id(self) -> str | None:
        return self._meta.meta.log_id

    @property
    def stored_seq(self) -> int:
        return self._commit.stored

    @property
    def epoch(self) -> int:
        return self._meta.meta.epoch

    @property
    def vote(self) -> Vote | None:
        return self._meta.meta.vote

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def rolled_back_entries(self) -> int:
        return self._rollback.count

    @property
    def cached_bytes(self) -> int:
        """Memory held by recent entries in the cache."""
        return self._prefix.cached_bytes

    def status(self) -> StorageStatus:
        reason = self._failure.reason
        return StorageStatus(reason is None, reason, self._generation, self._commit.stored)

    def set_listener(self, listener: StoredListener) -> None:
        self._listener = listener
        self._commit.set_listener(self._publish)

    def add_watcher(self, watcher: StoredListener) -> None:
        self._watchers.append(watcher)
        self._commit.set_listener(self._publish)

    def _publish(self, seq: int) -> None:
        """The flusher thread, outside every lock: the listener, then the watchers."""
        listener = self._listener
        if listener is not None:
            listener(seq)
        for watcher in self._watchers:
            watcher(seq)

    def set_status_listener(self, listener: StatusListener) -> None:
        self._status_listener = listener

    def last_position(self) -> Position:
        with self._lock:
            seq = self._commit.stored
            return Position(self._log.epoch_at(seq), seq)

    def epoch_at(self, seq: int) -> int:
        with self._lock:
            return self._log.epoch_at(seq)

    def bounds(self, newest: int | None = None) -> list[tuple[int, int]]:
        with self._lock:
            return self._log.bounds(newest)

    def read(self, from_seq: int, max_count: int, max_bytes: int = 1 << 62) -> list[Entry]:
        """Stored entries only; takes no store lock, so it never waits behind a write or fsync."""
        last = min(from_seq + max_count - 1, self._commit.stored) if max_count > 0 else 0
        if from_seq < 1 or last < from_seq:
            return []
        page = self._prefix.read(from_seq, last - from_seq + 1, max_bytes)
        stored = self._commit.stored  # a truncation may have lowered it meanwhile: show only what is stored
        return page if not page or page[-1].seq <= stored else page[: max(0, stored - from_seq + 1)]

    # --- writes ------------------------------------------------------------------------------------
    def save_term(self, epoch: int, vote_for: str | None, *, if_last: Position | None = None) -> None:
        """Adopt (epoch, vote) durably: meta.json is replaced and fsynced before this returns."""
        with self._lock:
            self._check_open()
            stored = self._commit.stored
            check_unmoved(if_last, Position(self._log.epoch_at(stored), stored), self._log.contiguous_seq)
            if not self._meta.save_term(epoch, vote_for):
                return
            vote = self._meta.meta.vote
        log.info("term saved dir=%s epoch=%d vote=%s", self.data_dir, epoch, vote and vote.candidate)

    def append(
        self, items: Sequence[str | NewEntry], *, generation: int | None = None, epoch: int | None = None
    ) -> list[Entry]:
        """Master: write the entries in this node's epoch and return them; the flusher reports them
        stored. `epoch`: see `Store.append`."""
        with self._lock:
            self._check_append(generation, epoch)
            if not items:
                return []
            failed = self._append_locked(items, self._clock())
            if isinstance(failed, list):
                return failed
        self._tell_status(failed[1])
        raise failed[0]

    def append_unique(
        self, items: Sequence[NewEntry], *, generation: int | None = None, epoch: int | None = None
    ) -> KeyedAppend:
        """Master: `append` with idempotency keys (see `Store.append_unique`): the window is
        checked and updated under the store lock, so two repeats of one key never both store."""
        with self._lock:
            self._check_append(generation, epoch)
            now = self._clock()
            self._keys.expire(now)
            found = self._keys.plan([(item.message, item.key) for item in items], now)
            fresh = [item for item, held in zip(items, found, strict=True) if held is None]
            failed = self._append_locked(fresh, now) if fresh else []
            if isinstance(failed, list):
                return KeyedAppend.of(found, failed)
        self._tell_status(failed[1])
        raise failed[0]

    @property
    def keys_held(self) -> int:
        return len(self._keys)

    def _check_append(self, generation: int | None, epoch: int | None) -> None:
        if self._closed or self._failure.reason is not None:
            self._check_writable()
        check_epoch(epoch, self._meta.meta.epoch)
        if generation is not None and generation != self._generation:
            raise StorageUnavailable(
                "the log store failed and recovered since this append began; nothing was stored",
                retry_after_s=self._retry_s,
            )

    def _append_locked(
        self, items: Sequence[str | NewEntry], now: float
    ) -> list[Entry] | tuple[StorageUnavailable, StorageStatus]:
        """Under the store lock: the entries appended, or (error, status) if the write failed."""
        try:
            entries = self._log.append(items, now, self._meta.meta.epoch)
        except OSError as exc:  # a write under INTERVAL or NEVER (ALWAYS defers it)
            return self._fail_locked(f"writing {self._prefix.path} failed: {exc}")
        self._commit.wrote(entries[-1].seq)
        self._keys.note(entries)
        return entries

    def _rebuild_keys(self, policy: WindowPolicy) -> None:
        """At open, before any thread shares the store: the dedup window from the log's tail."""
        started = time.monotonic()

        def pages() -> Iterator[list[Entry]]:
            last = len(self._prefix)
            while last >= 1:
                first = max(1, last - REBUILD_PAGE + 1)
                yield self._prefix.read(first, last - first + 1, 1 << 62)
                last = first - 1

        self._keys, scanned = rebuild(policy, pages(), self._clock())
        if scanned:
            log.info(
                "dedup window rebuilt dir=%s keys=%d scanned=%d ms=%.1f",
                self.data_dir, len(self._keys), scanned, (time.monotonic() - started) * 1000,
            )  # fmt: skip

    def apply(
        self, log_id: str, entries: Sequence[Entry], head: BatchHead | None = None, *, rollback: bool = False
    ) -> int:
        """Secondary: check log_id and the batch's attachment (`core.matching`), roll a diverged
        suffix back if `rollback` (cluster mode) and the check says so (`truncate_after`, under the
        same lock hold), write what is new, adopt log_id once the batch is accepted, return the
        stored seq once durable."""
        removed: _Removed | None = None
        with self._lock:
            self._check_writable()
            check_sender(head, self._meta.meta.epoch)
            adopt = check_log_id(self._meta.meta.log_id, log_id)
            verdict = self._log.decide(head, entries, rollback=rollback)  # a refusal changes nothing
            if isinstance(verdict, TruncateAfter):
                removed = self._truncate_locked(verdict.seq, rollback_reason(verdict, head))
            if removed is None or removed.status is None:
                new = self._log.joining(verdict, entries, self._clock())
                if adopt:
                    self._adopt(log_id)  # named durably before its first entry is written
                written = self._write_locked(lambda: self._log.extend(new))
        if removed is not None:
            self._report_rollback(removed)
            if removed.status is not None:
                raise self._failure.error(removed.status.reason or "cutting the log failed")
        return self._wait_written(written)

    def learn(self, entries: Sequence[Entry]) -> int:
        """Master behind its secondaries: append entries learned from a peer as they are, fsynced
        (explicitly, under INTERVAL and NEVER too) before returning the stored seq."""
        with self._lock:
            self._check_writable()
            written = self._write_locked(lambda: self._log.learn(entries))
        stored = self._wait_written(written)
        if self._fsync is not FsyncPolicy.ALWAYS and entries:
            try:
                self._sync_fd(self._prefix.fd)
            except OSError as exc:
                self._fail(f"fsync of {self._prefix.path} failed: {exc}", verify=True)
                raise self._failure.error(f"fsync of learned entries failed: {exc}") from exc
        return stored

    def _write_locked(self, write: Callable[[], list[Entry]]) -> _Written:
        """Holding the store lock: run one write of the log; a refusal (raised by `write`) changes
        nothing. Returns what `_wait_written` needs, to wait outside the lock."""
        generation = self._generation
        try:
            joined = write()
        except OSError as exc:  # a write under INTERVAL or NEVER (ALWAYS defers it)
            return _Written(0, generation, self._fail_locked(f"writing {self._prefix.path} failed: {exc}"))
        if joined:
            self._commit.wrote(self._log.contiguous_seq)
            self._keys.expire(self._clock())
            self._keys.note(joined)  # so the keys survive a change of master (and a catch-up)
        return _Written(self._log.contiguous_seq, generation, None)

    def _wait_written(self, written: _Written) -> int:
        """Outside the store lock: report a failed write, or wait until the write is stored."""
        if written.failed is not None:
            self._tell_status(written.failed[1])
            raise written.failed[0]
        dropped = lambda: self._generation != written.generation  # noqa: E731 -- a one-line predicate
        return self._commit.wait_stored(written.target, dropped, self._prefix.path)

    def truncate_after(self, seq: int, reason: str) -> int:
        """Remove the entries after seq: saved to rollback.jsonl and fsynced first, then the log is
        cut (ftruncate + fsync). Returns how many; 0 if the log ends at or before seq. Refused with
        `WritesInFlight` while entries past seq are still being written, changing nothing."""
        if seq < 0:
            raise ValueError(f"cannot truncate after seq {seq}")
        with self._lock:
            self._check_writable()
            removed = self._truncate_locked(seq, reason)
        if removed is None:
            return 0
        self._report_rollback(removed)
        return removed.count

    def _truncate_locked(self, seq: int, reason: str) -> _Removed | None:
        """Under the store lock: `truncate_after`'s work; None if nothing is past seq. The caller
        reports the result outside the lock (`_report_rollback`)."""
        top = self._log.contiguous_seq
        if seq >= top:
            return None
        in_flight = self._commit.in_flight()
        if in_flight is not None:
            raise WritesInFlight(f"entries {in_flight[0] + 1}..{in_flight[1]} are still being written")
        self._save_rollback(seq, top, reason)
        self._commit.cut_to(seq)
        self._log.truncate_after(seq)  # memory first, once the reads in progress are done
        self._keys.forget_after(seq)  # their keys leave the dedup window: a retry stores them again
        status = None
        try:
            os.ftruncate(self._prefix.fd, self._prefix.end)
            self._sync_fd(self._prefix.fd)
        except OSError as exc:  # the entries are gone from the log either way
            message = f"cutting {self._prefix.path} to {self._prefix.end} bytes failed: {exc}"
            _, status = self._fail_locked(message, verify=True)
        return _Removed(seq, top - seq, reason, status)

    def _report_rollback(self, removed: _Removed) -> None:
        """Outside the store lock: the WARNING of a rollback, and a failure it caused."""
        log.warning(
            "rolled back seqs=%d..%d count=%d reason=%s file=%s",
            removed.seq + 1, removed.seq + removed.count, removed.count, removed.reason, self._rollback.path,
        )  # fmt: skip
        if removed.status is not None:
            self._tell_status(removed.status)

    def _save_rollback(self, seq: int, top: int, reason: str) -> None:
        """Under the store lock: every entry in seq+1..top into the rollback file, durably."""

        def pages() -> Iterator[list[Entry]]:
            first = seq + 1
            while first <= top:
                page = self._prefix.read(first, min(ROLLBACK_PAGE, top - first + 1), 1 << 62)
                yield page
                first += len(page)

        try:
            self._rollback.save(pages(), self._clock(), reason)
        except OSError as exc:
            raise StorageUnavailable(
                f"saving entries {seq + 1}..{top} to {self._rollback.path} failed: {exc}; "
                "nothing was removed",
                retry_after_s=self._retry_s,
            ) from exc

    def close(self) -> None:
        """Final fsync (every policy, unless failed), stop the flusher, close the files. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._commit.close()
        self._prefix.close()
        os.close(self._lock_fd)
        log.info("log store closed dir=%s seq=%d", self.data_dir, self._commit.stored)

    def _adopt(self, log_id: str) -> None:
        """Under the store lock: name this log, durably first (meta.json), then in memory. A failed
        meta write leaves the store unnamed and unbroken: the next batch tries again."""
        self._meta.adopt_log_id(log_id)
        log.info("log id adopted dir=%s log_id=%s", self.data_dir, log_id)

    def _check_open(self) -> None:
        if self._closed:
            raise ShuttingDown(f"the log store at {self.data_dir} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        self._failure.check()

    # --- failure and recovery ----------------------------------------------------------------------
    def _fail(self, reason: str, *, verify: bool = False) -> None:
        """The flusher's write or fsync failed: `_fail_locked`, then tell the status listener."""
        with self._lock:
            _, status = self._fail_locked(reason, verify=verify)
        self._tell_status(status)

    def _fail_locked(self, reason: str, *, verify: bool = False) -> tuple[StorageUnavailable, StorageStatus]:
        """Under the store lock (so nothing is written meanwhile): fail the store, refusing writes;
        drop what is not durable; cut the file back to the durable end; start a new generation.
        Returns the error for the caller and the status for the listener, to tell outside the lock."""
        error = self._failure.record(reason, verify=verify)
        durable = self._commit.stored
        top = self._log.contiguous_seq
        if top > durable:
            self._log.truncate_after(durable)
            self._keys.forget_after(durable)  # a repeat of a dropped entry's key stores it again
            log.warning(
                "dropped entries never durable dir=%s seqs=%d..%d (their seqs will be reused)",
                self.data_dir, durable + 1, top,
            )  # fmt: skip
        self._generation += 1
        self._commit.cut_to(durable)  # wakes appliers waiting on what was dropped
        try:
            os.ftruncate(self._prefix.fd, self._prefix.end)
        except OSError as exc:  # the flusher cuts again before it clears the failure
            log.warning("cutting %s back to %d bytes failed: %s", self._prefix.path, self._prefix.end, exc)
        status = self.status()
        return error, status

    def _tell_status(self, status: StorageStatus) -> None:
        listener = self._status_listener
        if listener is None:
            return
        try:
            listener(status)
        except Exception:
            log.exception("storage status listener failed dir=%s", self.data_dir)

    def _try_recover(self, attempt: int) -> None:
        """Flusher, while failed: does the disk take a write and an fsync again? Then clear."""
        count, end = len(self._prefix), self._prefix.end  # stable: every write is refused meanwhile
        try:
            probe_disk(self._prefix.fd, end, self._sync_fd)
            if self._failure.needs_verify:
                self._prefix.reopen()
                verify_records(self._prefix.fd, self._prefix.path, end, count)
        except OSError as exc:
            level = logging.WARNING if attempt == 1 or attempt % 60 == 0 else logging.DEBUG
            log.log(level, "log store still failing dir=%s attempt=%d error=%s", self.data_dir, attempt, exc)
            return
        except CorruptLog as exc:
            self._failure.record(f"read-back after a failed fsync: {exc}", permanent=True)
            log.error(
                "log store cannot recover dir=%s: %s; restart the node to recover its log", self.data_dir, exc
            )
            return
        with self._lock:
            self._failure.clear()
            status = self.status()
        self._tell_status(status)

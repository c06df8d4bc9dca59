"""A durable `Store`: one append-only record file plus a small meta file in a data directory.

Layout: `entries.dat` (records of `replog.core.records`, seqs 1..k in order), `meta.json` (format
version and log_id, replaced atomically), `LOCK` (flock: one process per directory).

Group commit: `append` adds records under the store lock and returns at once; one flusher thread
fsyncs outside every lock, then advances `stored_seq` and tells the listener. One fsync covers every
record written before it began. Loss window on a crash of the *machine* (a killed process loses
nothing it reported stored in any mode: those writes are already in the page cache):

- ALWAYS (default): nothing reported stored is lost; `stored_seq` advances only after fsync. The
  flusher also does the write, one pwrite per group just before its fsync, so an append makes no
  syscall at all.
- INTERVAL: `stored_seq` advances on write; fsync at most every `fsync_interval_s`, so up to that
  interval (plus one fsync) of acknowledged entries can be lost.
- NEVER: `stored_seq` advances on write; the kernel writes back when it likes (about 30 s on
  Linux defaults), so that much can be lost, and a master may come back behind its secondaries.
With INTERVAL or NEVER a power loss can also persist later pages but not earlier ones; recovery
then finds damage before valid data and refuses to start (see `records.recover`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from replog.core import records
from replog.core.errors import ShuttingDown
from replog.core.fsync import FsyncPolicy as FsyncPolicy  # noqa: PLC0414 -- re-exported for callers
from replog.core.log import OrderedLog, check_log_id
from replog.core.records import CorruptLog as CorruptLog  # noqa: PLC0414 -- re-exported
from replog.core.wire import Entry
from replog.storage.datadir import LOG_FILE, META_FILE, fsync_dir, lock_dir, read_meta, write_meta
from replog.storage.datadir import DataDirInUseError as DataDirInUseError  # noqa: PLC0414 -- re-exported
from replog.storage.failure import StorageError as StorageError  # noqa: PLC0414 -- re-exported
from replog.storage.prefix import DiskPrefix, pread_all
from replog.storage.store import StoredListener

log = logging.getLogger(__name__)

SyncFd = Callable[[int], None]
DEFAULT_SYNC: SyncFd = getattr(os, "fdatasync", os.fsync)  # an append's size change is data: enough


class DiskStore:
    """The durable `Store`: an `OrderedLog` over a `DiskPrefix`, with a group-commit flusher thread.

    Owners: this store alone holds the log id and writes meta.json (`_adopt`); the prefix's
    `StorageFailure` alone holds why the log stopped, and the flusher records into it.
    """

    def __init__(
        self, data_dir: Path, prefix: DiskPrefix, log_id: str | None, lock_fd: int, *,
        fsync: FsyncPolicy, fsync_interval_s: float, clock: Callable[[], float], sync_fd: SyncFd,
    ) -> None:  # fmt: skip
        self.data_dir = data_dir
        self._prefix = prefix
        self._failure = prefix.failure
        self._log = OrderedLog(prefix)
        self._log_id = log_id  # written only by `_adopt`, under the store lock
        self._lock_fd = lock_fd
        self._policy = fsync
        self._interval_s = fsync_interval_s
        self._clock = clock
        self._sync_fd = sync_fd
        self._lock = threading.Lock()  # the store lock: seq assignment and writes
        self._closed = False
        state = threading.Lock()  # guards the seqs below; never held during I/O
        self._work = threading.Condition(state)  # the flusher waits here
        self._progress = threading.Condition(state)  # apply waits here for its fsync
        self._written = self._synced = self._stored = self._published = len(prefix)
        self._last_sync = float("-inf")
        self._closing = False
        self._flusher_done = False
        self._listener: StoredListener | None = None
        self._flusher = threading.Thread(target=self._run_flusher, name="replog-flusher", daemon=True)
        self._flusher.start()

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        fsync: FsyncPolicy = FsyncPolicy.ALWAYS,
        fsync_interval_s: float = 0.005,
        new_log_id: str | None = None,
        clock: Callable[[], float] = time.time,
        cache_entries: int = 50_000,
        sync_fd: SyncFd = DEFAULT_SYNC,
    ) -> DiskStore:
        """Open (recovering) or create the log in data_dir. new_log_id names a new master's log only."""
        if not data_dir.is_dir():
            data_dir.mkdir(parents=True)
            fsync_dir(data_dir.parent)
        lock_fd = lock_dir(data_dir)
        try:
            defer_writes = fsync is FsyncPolicy.ALWAYS
            prefix, log_id = _recover(data_dir, cache_entries, sync_fd, defer_writes)
        except BaseException:
            os.close(lock_fd)
            raise
        store = cls(
            data_dir, prefix, log_id, lock_fd,
            fsync=fsync, fsync_interval_s=fsync_interval_s, clock=clock, sync_fd=sync_fd,
        )  # fmt: skip
        if log_id is None and new_log_id is not None:  # a new master's log is named before its first entry
            try:
                with store._lock:
                    store._adopt(new_log_id)
            except BaseException:
                store.close()
                raise
        log.info(
            "log store opened dir=%s log_id=%s seq=%d fsync=%s",
            data_dir, store.log_id, len(prefix), fsync.value,
        )  # fmt: skip
        return store

    @property
    def log_id(self) -> str | None:
        return self._log_id

    @property
    def stored_seq(self) -> int:
        return self._stored

    def set_listener(self, listener: StoredListener) -> None:
        with self._work:
            self._listener = listener
            self._work.notify()

    def append(self, messages: Sequence[str]) -> list[Entry]:
        """Master: write the entries and return them; the flusher reports them stored."""
        with self._lock:
            self._check_open()
            if not messages:
                return []
            entries = self._log.append(messages, self._clock())
            self._wrote(entries[-1].seq)
        return entries

    def apply(self, log_id: str, entries: Sequence[Entry]) -> int:
        """Secondary: adopt/check log_id, write what became contiguous, return the stored seq."""
        with self._lock:
            self._check_open()
            if check_log_id(self._log_id, log_id):
                self._adopt(log_id)
            if self._log.insert(entries, self._clock()):
                self._wrote(self._log.contiguous_seq)
            target = self._log.contiguous_seq
        with self._progress:
            while self._stored < target:
                self._failure.check()
                if self._flusher_done:
                    raise ShuttingDown(f"the log store at {self.data_dir} closed before an fsync")
                self._progress.wait()
            return self._stored

    def read(self, from_seq: int, max_count: int, max_bytes: int = 1 << 62) -> list[Entry]:
        """Stored entries only; takes no store lock, so it never waits behind a write or fsync."""
        last = min(from_seq + max_count - 1, self._stored) if max_count > 0 else 0
        if from_seq < 1 or last < from_seq:
            return []
        return self._prefix.read(from_seq, last - from_seq + 1, max_bytes)

    def close(self) -> None:
        """Final fsync (every policy), stop the flusher, close the files. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with self._work:
            self._closing = True
            self._work.notify()
        self._flusher.join()
        self._prefix.close()
        os.close(self._lock_fd)
        log.info("log store closed dir=%s seq=%d", self.data_dir, self._stored)

    def _adopt(self, log_id: str) -> None:
        """Under the store lock: name this log, durably first (meta.json), then in memory. A failed
        meta write leaves the store unnamed and unbroken: the next batch tries again."""
        try:
            write_meta(self.data_dir, log_id)
        except OSError as exc:
            raise StorageError(
                f"recording log id {log_id} in {self.data_dir / META_FILE} failed: {exc}"
            ) from exc
        self._log_id = log_id
        log.info("log id adopted dir=%s log_id=%s", self.data_dir, log_id)

    def _check_open(self) -> None:
        if self._closed:
            raise ShuttingDown(f"the log store at {self.data_dir} is closed")
        self._failure.check()

    def _wrote(self, seq: int) -> None:
        with self._work:
            self._written = seq
            if self._policy is not FsyncPolicy.ALWAYS:
                self._stored = seq
            self._work.notify()

    def _run_flusher(self) -> None:
        try:
            while self._flush_once():
                pass
        except Exception:
            log.exception("log flusher crashed dir=%s", self.data_dir)
            self._failure.record("the log flusher crashed")
        finally:
            with self._work:
                self._flusher_done = True
                self._progress.notify_all()

    def _flush_once(self) -> bool:
        """Wait for work; fsync outside the lock; publish the stored seq. False once closed."""
        with self._work:
            while True:
                sync = self._written > self._synced and (
                    self._policy is not FsyncPolicy.NEVER or self._closing
                )
                timeout = None
                if sync and self._policy is FsyncPolicy.INTERVAL and not self._closing:
                    wait_s = self._last_sync + self._interval_s - time.monotonic()
                    sync, timeout = wait_s <= 0, max(wait_s, 0.0)
                if sync or (self._listener is not None and self._stored > self._published):
                    break
                if self._closing:
                    return False
                self._work.wait(timeout)
            target = self._written
        if sync and not self._sync(target):
            return False
        with self._work:
            listener, seq = self._listener, self._stored
            if listener is None or seq <= self._published:
                return True
            self._published = seq
        try:
            listener(seq)  # outside every lock, from this one thread, in increasing order
        except Exception:
            log.exception("stored-seq listener failed dir=%s seq=%d", self.data_dir, seq)
        return True

    def _sync(self, target: int) -> bool:
        try:
            self._prefix.write_deferred()
        except StorageError:
            return False  # the prefix logged it and refuses everything from now on
        try:
            self._sync_fd(self._prefix.fd)
        except OSError as exc:  # after a failed fsync the page cache may lie: never trust it again
            self._failure.record(f"fsync of {self._prefix.path} failed: {exc}")
            return False
        with self._work:
            self._synced, self._last_sync = target, time.monotonic()
            self._stored = max(self._stored, target)
            self._progress.notify_all()
        return True


def _recover(
    data_dir: Path, cache_entries: int, sync_fd: SyncFd, defer_writes: bool
) -> tuple[DiskPrefix, str | None]:
    path, meta_path = data_dir / LOG_FILE, data_dir / META_FILE
    log_id = read_meta(meta_path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        size = os.fstat(fd).st_size
        found = records.recover(lambda offset, n: os.pread(fd, n, offset), size, path)
        if found.torn_reason is not None:
            log.warning(
                "torn tail truncated file=%s offset=%d dropped_bytes=%d reason=%s",
                path, found.end, size - found.end, found.torn_reason,
            )  # fmt: skip
            os.ftruncate(fd, found.end)
            sync_fd(fd)
        count = len(found.offsets)
        if log_id is None and count:
            raise CorruptLog(
                f"{META_FILE} is missing but {LOG_FILE} holds {count} entries", path=meta_path, offset=0
            )
        cached = min(count, cache_entries)
        start = found.offsets[count - cached] if cached else found.end
        tail = records.decode_run(pread_all(fd, found.end - start, start), count - cached + 1, start, path)
        return DiskPrefix(
            path, fd, offsets=found.offsets, end=found.end, tail=tail, cache_entries=cache_entries,
            defer_writes=defer_writes,
        ), log_id  # fmt: skip
    except BaseException:
        os.close(fd)
        raise

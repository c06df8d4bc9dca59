"""Group commit for a disk store: the seqs written, synced, stored and published, and the one
flusher thread that advances them (and, while the store is failed, retries the disk).

`append` adds records under the store lock and returns at once; one fsync covers every record
written before it began; the flusher tells the stored-seq listener outside every lock, from this
one thread, in increasing order. Loss window on a crash of the *machine* (a killed process loses
nothing it reported stored in any mode: those writes are already in the page cache):

- ALWAYS (default): nothing reported stored is lost; an entry is *stored* only after its fsync.
  The flusher also does the write, one pwrite per group just before its fsync
  (`DiskPrefix.write_deferred`), so an append makes no syscall at all.
- INTERVAL: stored on write; fsync at most every `interval_s`, so up to that interval (plus one
  fsync) of acknowledged entries can be lost.
- NEVER: stored on write; the kernel writes back when it likes (about 30 s on Linux defaults), so
  that much can be lost, and a master may come back behind its secondaries.
With INTERVAL or NEVER a power loss can also persist later pages but not earlier ones; recovery
then finds damage before valid data and refuses to start (see `records.recover`).

What a failure means is the store's to decide: the flusher calls `on_failure(reason, verify)` when
a write or fsync fails, and `try_recover(attempt)` every `retry_s` while the store is failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from replog.core.errors import ShuttingDown
from replog.core.fsync import FsyncPolicy
from replog.storage.failure import StorageFailure
from replog.storage.prefix import DiskPrefix

log = logging.getLogger(__name__)

StoredListener = Callable[[int], None]


class GroupCommit:
    """The seqs of one store and its flusher. Thread-safe; its state lock is never held during I/O
    and never taken before the store lock (the store calls in holding its lock, not the reverse)."""

    def __init__(
        self, prefix: DiskPrefix, failure: StorageFailure, *, policy: FsyncPolicy, interval_s: float,
        retry_s: float, sync_fd: Callable[[int], None], on_failure: Callable[[str, bool], object],
        try_recover: Callable[[int], None],
    ) -> None:  # fmt: skip
        self._prefix = prefix
        self._failure = failure
        self._policy = policy
        self._interval_s = interval_s
        self._retry_s = retry_s
        self._sync_fd = sync_fd
        self._on_failure = on_failure
        self._try_recover = try_recover
        state = threading.Lock()
        self._work = threading.Condition(state)  # the flusher waits here
        self._progress = threading.Condition(state)  # appliers wait here for their fsync
        self._written = self._synced = self._stored = self._published = len(prefix)
        self._last_sync = float("-inf")
        self._closing = False
        self._done = False
        self._listener: StoredListener | None = None
        self.thread = threading.Thread(target=self._run, name="replog-flusher", daemon=True)
        self.thread.start()

    @property
    def stored(self) -> int:
        return self._stored

    def set_listener(self, listener: StoredListener) -> None:
        with self._work:
            self._listener = listener
            self._work.notify()

    def wrote(self, seq: int) -> None:
        """Entries up to seq are in the prefix (buffered, under ALWAYS): the flusher takes over."""
        with self._work:
            self._written = seq
            if self._policy is not FsyncPolicy.ALWAYS:
                self._stored = seq
            self._work.notify()

    def in_flight(self) -> tuple[int, int] | None:
        """(stored, written) while some written entries are not stored yet, else None."""
        with self._work:
            return (self._stored, self._written) if self._written > self._stored else None

    def cut_to(self, seq: int) -> None:
        """The log now ends at or before seq (a truncation, or a failure dropping what was not
        durable): no seq above it counts as written, synced, stored or published any more."""
        with self._work:
            self._written = min(self._written, seq)
            self._synced = min(self._synced, seq)
            self._stored = min(self._stored, seq)
            self._published = min(self._published, seq)
            self._progress.notify_all()
            self._work.notify()

    def wait_stored(self, target: int, dropped: Callable[[], bool], path: Path) -> int:
        """Block until target is stored; StorageUnavailable if `dropped()` says a failure dropped
        it meanwhile; ShuttingDown if the flusher stopped first. Returns the stored seq."""
        with self._progress:
            while self._stored < target:
                if dropped():
                    raise self._failure.error(
                        self._failure.reason or "the disk failed before the write was durable"
                    )
                if self._done:
                    raise ShuttingDown(f"the log store at {path.parent} closed before an fsync")
                self._progress.wait()
            return self._stored

    def wake(self) -> None:
        """Something changed that waiters and the flusher must look at (a failure)."""
        with self._work:
            self._progress.notify_all()
            self._work.notify()

    def close(self) -> None:
        """Final fsync (every policy, unless failed), then stop the flusher."""
        with self._work:
            self._closing = True
            self._work.notify()
        self.thread.join()

    # --- the flusher thread ------------------------------------------------------------------------
    def _run(self) -> None:
        attempt = 0
        try:
            while True:
                if self._failure.reason is None:
                    attempt = 0
                    if not self._flush_once():
                        return
                    continue
                if not self._wait_retry():
                    return  # closing: what was not durable stays unwritten
                if not self._failure.permanent:
                    attempt += 1
                    self._try_recover(attempt)
        except Exception:
            log.exception("log flusher crashed file=%s", self._prefix.path)
            self._failure.record("the log flusher crashed", permanent=True)
        finally:
            with self._work:
                self._done = True
                self._progress.notify_all()

    def _wait_retry(self) -> bool:
        """Wait `retry_s` (or until closing); True if it is time to retry."""
        with self._work:
            if not self._closing:
                self._work.wait(self._retry_s)
            return not self._closing

    def _flush_once(self) -> bool:
        """Wait for work; write and fsync outside the lock; publish the stored seq. False once closed."""
        with self._work:
            while True:
                if self._failure.reason is not None:
                    return True  # back to `_run`, which retries
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
            return True
        with self._work:
            listener, seq = self._listener, self._stored
            if listener is None or seq <= self._published:
                return True
            self._published = seq
        try:
            listener(seq)  # outside every lock, from this one thread, in increasing order
        except Exception:
            log.exception("stored-seq listener failed file=%s seq=%d", self._prefix.path, seq)
        return True

    def _sync(self, target: int) -> bool:
        try:
            self._prefix.write_deferred()
        except OSError as exc:
            self._on_failure(f"writing {self._prefix.path} failed: {exc}", False)
            return False
        try:
            self._sync_fd(self._prefix.fd)
        except OSError as exc:  # after a failed fsync the page cache may lie: verified before clearing
            self._on_failure(f"fsync of {self._prefix.path} failed: {exc}", True)
            return False
        with self._work:
            self._synced, self._last_sync = target, time.monotonic()
            self._stored = max(self._stored, target)
            self._progress.notify_all()
        return True

"""Why a durable log refuses writes right now: one owner of that state, one way to set and clear it.

A failed write (a full disk), a failed fsync (after which the page cache may lie) or a failed cut
of the file leaves the store *failed*: it refuses every write with the reason, and its flusher
retries until the disk takes a write and an fsync again, then clears the failure. A crashed
flusher cannot retry, so that failure is permanent (`permanent`). The store records failures
through `StorageFailure.record` and every write path checks through `check`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from replog.core import records
from replog.core.errors import StorageUnavailable
from replog.core.records import CorruptLog
from replog.storage.prefix import pwrite_all

log = logging.getLogger(__name__)

StorageError = StorageUnavailable  # the name this error had when a failure was forever


class StorageFailure:
    """The current failure, if any: the first reason wins until `clear`; logged once per failure.

    Thread-safe: the flusher thread and request threads may report at once. `needs_verify` says an
    fsync failed, so the records up to the durable end must be read back before clearing."""

    def __init__(self, path: Path, retry_after_s: float = 1.0) -> None:
        self._path = path
        self._retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self._reason: str | None = None
        self.needs_verify = False
        self.permanent = False

    @property
    def reason(self) -> str | None:
        return self._reason

    def record(self, reason: str, *, verify: bool = False, permanent: bool = False) -> StorageUnavailable:
        """Fail the log with `reason` unless it already failed (a permanent failure replaces a
        transient one); the error to raise carries the reason held."""
        with self._lock:
            first = self._reason is None or (permanent and not self.permanent)  # the worse one wins
            if first:
                self._reason = reason
            self.needs_verify |= verify
            self.permanent |= permanent
            held = self._reason
        assert held is not None
        if first:
            log.error(
                "log store failed file=%s reason=%s; refusing writes until it recovers", self._path, reason
            )
        return self.error(held)

    def clear(self) -> str | None:
        """The disk works again: accept writes. Returns the reason that was cleared."""
        with self._lock:
            if self.permanent:
                return None
            reason, self._reason, self.needs_verify = self._reason, None, False
        if reason is not None:
            log.warning(
                "log store recovered file=%s; accepting writes again (it failed: %s)", self._path, reason
            )
        return reason

    def check(self) -> None:
        """Raise the current failure, if any."""
        reason = self._reason
        if reason is not None:
            raise self.error(reason)

    def error(self, reason: str) -> StorageUnavailable:
        return StorageUnavailable(
            f"the log store cannot write: {reason}; nothing was stored", retry_after_s=self._retry_after_s
        )


PROBE_BYTES = 64 << 10  # a small write, yet room for a batch of entries once it succeeds


def probe_disk(fd: int, end: int, sync_fd: Callable[[int], None]) -> None:
    """Cut the file back to `end` (the durable end), check the disk takes a write and an fsync
    there, and cut the probe off again. OSError while the disk still fails. The probe is zeros: a
    crash before the last cut leaves a tail that recovery cuts off as torn."""
    os.ftruncate(fd, end)
    try:
        pwrite_all(fd, bytes(PROBE_BYTES), end)
        sync_fd(fd)
    finally:
        os.ftruncate(fd, end)
    sync_fd(fd)


def verify_records(fd: int, path: Path, end: int, count: int) -> None:
    """Read back and checksum the records 1..count, which must end exactly at `end`.

    After a failed fsync the kernel may have dropped dirty pages it never wrote, and the page cache
    may still show them: the file's cached pages are evicted first (they are clean now that an fsync
    succeeded), so the records are read from the disk. CorruptLog if any is missing or damaged."""
    with contextlib.suppress(OSError):
        os.posix_fadvise(fd, 0, end, os.POSIX_FADV_DONTNEED)
    found = records.recover(lambda offset, n: os.pread(fd, n, offset), end, path)
    if found.torn_reason is not None or len(found.offsets) != count or found.end != end:
        raise CorruptLog(
            f"{len(found.offsets)} of {count} durable records read back intact ({found.torn_reason})",
            path=path,
            offset=found.end,
        )

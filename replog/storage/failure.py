"""Why a durable log stopped: one owner of that state, one way to record it.

A failed write that could not be cut off, a failed fsync (after which the page cache may lie), a
crashed flusher: each leaves the file in a state nothing may build on, so the store refuses every
later write with the reason. The prefix's writes and the store's flusher both find such failures;
both record them through `StorageFailure.record`, and every path checks through `check`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from replog.core.errors import ReplogError

log = logging.getLogger(__name__)


class StorageError(ReplogError):
    """A write or fsync of the log failed: the store accepts nothing more until restarted."""

    status = 500
    code = "storage_error"


class StorageFailure:
    """Set once, never cleared: the first reason wins and is logged once.

    Thread-safe: the flusher thread and request threads (through the prefix) may report at once.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._reason: str | None = None

    @property
    def reason(self) -> str | None:
        return self._reason

    def record(self, reason: str) -> StorageError:
        """Stop the log with `reason` unless it already stopped; the error to raise carries the first."""
        with self._lock:
            first = self._reason is None
            if first:
                self._reason = reason
            held = self._reason
        assert held is not None
        if first:
            log.error("log store broken file=%s reason=%s", self._path, reason)
        return StorageError(held)

    def check(self) -> None:
        """Raise the recorded failure, if any."""
        reason = self._reason
        if reason is not None:
            raise StorageError(reason)

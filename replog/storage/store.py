"""Thread-safe log stores: the shell around the pure `OrderedLog` that request threads share.

A store owns one lock. The master appends under it; a secondary applies batches under it. A store
reports its *stored* seq (durable, for a disk store) to a listener outside the lock; the master
counts itself toward w, and replicates, only up to that seq.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from replog.core.log import MemoryPrefix, OrderedLog, check_log_id
from replog.core.wire import Entry

StoredListener = Callable[[int], None]


class Store(Protocol):
    """What master and secondary nodes need from their log."""

    @property
    def log_id(self) -> str | None: ...

    @property
    def stored_seq(self) -> int:
        """Highest seq such that 1..seq are held (and durable, for a disk store)."""
        ...

    def set_listener(self, listener: StoredListener) -> None: ...

    def append(self, messages: Sequence[str]) -> list[Entry]:
        """Master: assign the next seqs atomically. Durability is reported via the listener."""
        ...

    def apply(self, log_id: str, entries: Sequence[Entry]) -> int:
        """Secondary: apply a batch idempotently; return the stored seq once durable."""
        ...

    def read(self, from_seq: int, max_count: int, max_bytes: int = ...) -> list[Entry]:
        """Stored entries from from_seq on."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """A log held in memory: fast, and forgotten on restart."""

    def __init__(self, log_id: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._log = OrderedLog(MemoryPrefix())
        self._log_id = log_id  # adopted in `apply` only, under the lock
        self._clock = clock
        self._listener: StoredListener | None = None

    @property
    def log_id(self) -> str | None:
        return self._log_id

    @property
    def stored_seq(self) -> int:
        return self._log.contiguous_seq

    def set_listener(self, listener: StoredListener) -> None:
        self._listener = listener

    def append(self, messages: Sequence[str]) -> list[Entry]:
        with self._lock:
            entries = self._log.append(messages, self._clock())
        if self._listener is not None:
            self._listener(entries[-1].seq)
        return entries

    def apply(self, log_id: str, entries: Sequence[Entry]) -> int:
        with self._lock:
            if check_log_id(self._log_id, log_id):
                self._log_id = log_id
            self._log.insert(entries, self._clock())
            return self._log.contiguous_seq

    def read(self, from_seq: int, max_count: int, max_bytes: int = 1 << 62) -> list[Entry]:
        with self._lock:
            return self._log.read(from_seq, max_count, max_bytes)

    def close(self) -> None:
        pass

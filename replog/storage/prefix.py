"""The on-disk `Prefix`: entries 1..k in one append-only record file, read back with `pread`.

Memory stays bounded: an 8-byte offset per entry (`array('Q')`) and a cache of the newest
entries, which replication and catch-up mostly read; older ranges are read from the file.

With `defer_writes` (fsync always), `extend` only buffers the records and the store's flusher
writes the buffer just before each fsync: one pwrite per group instead of one per append, and no
syscall (so no GIL hand-off) on a writer's path. Buffered entries are always in the cache.
"""

from __future__ import annotations

import os
import threading
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path

from replog.core import records
from replog.core.errors import ShuttingDown
from replog.core.log import cap_bytes
from replog.core.wire import Entry
from replog.storage.failure import StorageError, StorageFailure


class DiskPrefix:
    """A `Prefix` in one append-only file: an offset per entry, the newest entries cached, older pread.

    One writer at a time (the store lock) pwrites, then publishes offsets under `_mem`; readers copy
    what they need under `_mem` and pread outside it, so a read never waits for a write or an fsync.
    """

    def __init__(
        self, path: Path, fd: int, *, offsets: array[int], end: int, tail: list[Entry], cache_entries: int,
        defer_writes: bool = False,
    ) -> None:  # fmt: skip
        self.path = path
        self.fd = fd
        self.failure = StorageFailure(path)  # shared with the store's flusher, which records fsync failures
        self._offsets = offsets  # 8 bytes per entry: offsets[i] is where seq i+1 starts
        self._end = end
        self._tail = tail
        self._tail_first = len(offsets) - len(tail) + 1
        self._cache_entries = cache_entries
        self._mem = threading.Condition()
        self._readers = 0
        self._closed = False
        self._defer_writes = defer_writes
        self._unwritten = bytearray()  # records past the file's end, in order (defer_writes only)
        self._written = len(offsets)  # entries 1..written are in the file

    def __len__(self) -> int:
        return len(self._offsets)

    def get(self, seq: int) -> Entry:
        return self.read(seq, 1, 1)[0]

    def extend(self, entries: Sequence[Entry]) -> None:
        """Write records at the end (no fsync), then make them readable."""
        self.failure.check()
        blob, starts = records.encode_batch(entries)
        if not self._defer_writes:
            try:
                pwrite_all(self.fd, blob, self._end)
            except OSError as exc:
                self._undo_write(exc)
        with self._mem:
            if self._defer_writes:
                self._unwritten += blob
            else:
                self._written += len(entries)
            self._offsets.extend(self._end + start for start in starts)
            self._end += len(blob)
            self._tail.extend(entries)
            self._trim_cache()

    def _trim_cache(self) -> None:
        """Under `_mem`: drop the oldest cached entries in steps (amortised O(1) per entry), never
        one that is not in the file yet."""
        excess = min(len(self._tail) - self._cache_entries, self._written - self._tail_first + 1)
        if excess > self._cache_entries // 4:
            del self._tail[:excess]
            self._tail_first += excess

    def write_deferred(self) -> None:
        """Write the buffered records at the file's end (the flusher calls this before fsync).

        A failed write leaves the file behind the offsets already published, so the store stops."""
        with self._mem:
            blob, count = bytes(self._unwritten), len(self._offsets) - self._written
            at = self._end - len(blob)
            self._unwritten.clear()
        if not blob:
            return
        try:
            pwrite_all(self.fd, blob, at)
        except OSError as exc:
            raise self.failure.record(f"writing {self.path} at offset {at} failed: {exc}") from exc
        with self._mem:
            self._written += count
            self._trim_cache()

    def _undo_write(self, exc: OSError) -> None:
        """Cut a partial write off, so later records never follow garbage; else stop for good."""
        detail = f"writing {self.path} at offset {self._end} failed: {exc}"
        try:
            os.ftruncate(self.fd, self._end)
        except OSError as again:
            raise self.failure.record(f"{detail}; cutting the partial write off failed too: {again}") from exc
        raise StorageError(detail) from exc

    def read(self, from_seq: int, max_count: int, max_bytes: int) -> list[Entry]:
        with self._mem:
            if self._closed:
                raise ShuttingDown(f"the log store at {self.path.parent} is closed")
            last = min(from_seq + max_count - 1, len(self._offsets))
            if from_seq < 1 or last < from_seq:
                return []
            top = self._tail_first
            cached = self._tail[max(from_seq, top) - top : last - top + 1] if last >= top else []
            disk_last = min(last, top - 1)
            if disk_last < from_seq:
                return cap_bytes(cached, max_bytes)
            start, stop = self._offsets[from_seq - 1], self._offset_after(disk_last)
            limit = start + 4 * max_bytes  # a record is at most 4x what cap_bytes charges its entry
            if stop > limit:
                disk_last = max(from_seq, bisect_right(self._offsets, limit, from_seq, disk_last) - 1)
                stop, cached = self._offset_after(disk_last), []
            self._readers += 1
        try:
            data = pread_all(self.fd, stop - start, start)
        finally:
            with self._mem:
                self._readers -= 1
                self._mem.notify_all()
        return cap_bytes(records.decode_run(data, from_seq, start, self.path) + cached, max_bytes)

    def _offset_after(self, seq: int) -> int:
        return self._offsets[seq] if seq < len(self._offsets) else self._end

    def close(self) -> None:
        """Wait for reads in progress, then close the file."""
        with self._mem:
            if self._closed:
                return
            self._closed = True
            while self._readers:
                self._mem.wait()
        os.close(self.fd)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def pread_all(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            raise OSError(f"short read at offset {offset}: {len(data)} of {size} bytes")
        data += more
    return data

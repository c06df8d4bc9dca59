"""The on-disk `Prefix`: entries 1..k in one append-only record file, read back with `pread`.

Memory stays bounded: an 8-byte offset per entry (`array('Q')`) and a cache of the newest
entries, bounded in bytes (`cache_bytes`, counted with `entries_bytes`), which replication and
catch-up mostly read; older ranges are read from the file.

With `defer_writes` (fsync always), `extend` only buffers the records and the store's flusher
writes the buffer just before each fsync: one pwrite per group instead of one per append, and no
syscall (so no GIL hand-off) on a writer's path. Buffered entries are always in the cache, whatever
its bound: they cannot be read back from the file yet.

The prefix does I/O but owns no policy: a failed write raises `OSError` to the store, which
decides what it means (`replog.storage.disk`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path

from replog.core import records
from replog.core.entry import Entry, entries_bytes, entry_bytes
from replog.core.errors import ShuttingDown
from replog.core.log import cap_bytes

TRIM_CHUNK = 256  # entries measured at a time (in C) when trimming the cache


class DiskPrefix:
    """A `Prefix` in one append-only file: an offset per entry, the newest entries cached, older pread.

    One writer at a time (the store lock, or the flusher for deferred writes) pwrites, then
    publishes offsets under `_mem`; readers copy what they need under `_mem` and pread outside it,
    so a read never waits for a write or an fsync. Anything that changes bytes readers may be
    reading (`truncate`, `reopen`) first waits for the reads in progress.
    """

    def __init__(
        self, path: Path, fd: int, *, offsets: array[int], end: int, tail: list[Entry], cache_bytes: int,
        defer_writes: bool = False,
    ) -> None:  # fmt: skip
        self.path = path
        self.fd = fd
        self._offsets = offsets  # 8 bytes per entry: offsets[i] is where seq i+1 starts
        self._end = end
        self._tail = tail
        self._tail_first = len(offsets) - len(tail) + 1
        self._tail_bytes = entries_bytes(tail)
        self._cache_bytes = cache_bytes
        self._mem = threading.Condition()
        self._readers = 0
        self._closed = False
        self._defer_writes = defer_writes
        self._unwritten = bytearray()  # records past the file's end, in order (defer_writes only)
        self._written = len(offsets)  # entries 1..written are in the file
        self._trim_cache()

    def __len__(self) -> int:
        return len(self._offsets)

    @property
    def end(self) -> int:
        """Where the file's records end (deferred ones included)."""
        return self._end

    @property
    def cached_bytes(self) -> int:
        """Memory held by the cache of recent entries (`entries_bytes`)."""
        return self._tail_bytes

    def end_of(self, seq: int) -> int:
        """The offset just past the record of seq (0 for seq 0)."""
        with self._mem:
            return self._offset_after(seq) if seq > 0 else 0

    def get(self, seq: int) -> Entry:
        return self.read(seq, 1, 1)[0]

    def extend(self, entries: Sequence[Entry]) -> None:
        """Write records at the end (no fsync), then make them readable. OSError if the write fails:
        the partial write is cut off when possible, and nothing is published."""
        blob, starts = records.encode_batch(entries)
        if not self._defer_writes:
            try:
                pwrite_all(self.fd, blob, self._end)
            except OSError:
                with contextlib.suppress(OSError):  # the store cuts the file again before writing on
                    os.ftruncate(self.fd, self._end)
                raise
        with self._mem:
            if self._defer_writes:
                self._unwritten += blob
            else:
                self._written += len(entries)
            self._offsets.extend(self._end + start for start in starts)
            self._end += len(blob)
            self._tail.extend(entries)
            self._tail_bytes += entries_bytes(entries)
            self._trim_cache()

    def _trim_cache(self) -> None:
        """Under `_mem`: past the bound, drop the oldest cached entries down to about 3/4 of it, in
        chunks measured in C (amortised O(1) per entry), never one that is not in the file yet."""
        if self._tail_bytes <= self._cache_bytes:
            return
        excess = self._tail_bytes - self._cache_bytes * 3 // 4
        evictable = self._written - self._tail_first + 1
        count = freed = 0
        while count < evictable and freed < excess:
            chunk = self._tail[count : min(count + TRIM_CHUNK, evictable)]
            size = entries_bytes(chunk)
            if freed + size <= excess:
                freed, count = freed + size, count + len(chunk)
                continue
            for entry in chunk:  # the last chunk, entry by entry: keep the cache at about 3/4
                freed, count = freed + entry_bytes(entry), count + 1
                if freed >= excess:
                    break
            break
        if count:
            del self._tail[:count]
            self._tail_first += count
            self._tail_bytes -= freed

    def write_deferred(self) -> int:
        """Write the buffered records at the file's end (the flusher calls this before fsync).

        Returns how many entries it wrote. OSError if the write fails: the records stay buffered,
        and the store decides (it drops them: they were never durable)."""
        with self._mem:
            blob, count = bytes(self._unwritten), len(self._offsets) - self._written
            at = self._end - len(blob)
        if not blob:
            return 0
        pwrite_all(self.fd, blob, at)
        with self._mem:
            del self._unwritten[: len(blob)]
            self._written += count
            self._trim_cache()
        return count

    def truncate(self, seq: int) -> None:
        """Forget every entry after seq, buffered ones included, once the reads in progress are done.

        Memory only: the store cuts the file (`os.ftruncate(fd, end)`) after this returns; no write
        can come in between, since the store holds its lock and refuses writes until the cut is done."""
        with self._mem:
            if seq >= len(self._offsets):
                return
            new_end = self._offset_after(seq)
            file_end = self._end - len(self._unwritten)
            if new_end < self._end:
                del self._unwritten[max(0, new_end - file_end) :]
            self._written = min(self._written, seq)
            del self._offsets[seq:]
            self._end = new_end
            keep = max(0, seq - self._tail_first + 1)
            self._tail_bytes -= entries_bytes(self._tail[keep:])
            del self._tail[keep:]
            if not self._tail:
                self._tail_first = seq + 1
            while self._readers:
                self._mem.wait()

    def reopen(self) -> None:
        """Use a new file descriptor on the same file (after an fsync failure the old one may keep
        reporting it, or the kernel may have dropped pages it will never report again)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        with self._mem:
            while self._readers:
                self._mem.wait()
            old, self.fd = self.fd, fd
        os.close(old)

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
            fd = self.fd
        try:
            data = pread_all(fd, stop - start, start)
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

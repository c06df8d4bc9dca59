"""Opening a data directory: read meta.json, scan and checksum every record, cut a torn tail.

Recovery returns the log's epoch boundaries with its offsets (one scan, see `records.recover`) and
loads the newest records into the cache of recent entries.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from replog.core import records
from replog.core.epochs import EpochIndex
from replog.core.records import CorruptLog
from replog.storage.datadir import LOG_FILE, META_FILE, Meta, read_meta
from replog.storage.prefix import DiskPrefix, pread_all

log = logging.getLogger(__name__)

RECOVERY_CACHE_BYTES = 8 << 20


@dataclass(frozen=True)
class Opened:
    prefix: DiskPrefix
    epochs: EpochIndex
    meta: Meta


def open_log(data_dir: Path, cache_bytes: int, sync_fd: Callable[[int], None], defer_writes: bool) -> Opened:
    path, meta_path = data_dir / LOG_FILE, data_dir / META_FILE
    meta = read_meta(meta_path)
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
        if count and meta is None:
            raise CorruptLog(
                f"{META_FILE} is missing but {LOG_FILE} holds {count} entries", path=meta_path, offset=0
            )
        if count and meta is not None and meta.log_id is None:
            raise CorruptLog(
                f"{META_FILE} names no log but {LOG_FILE} holds {count} entries", path=meta_path, offset=0
            )
        # The newest records, at most RECOVERY_CACHE_BYTES of them on disk (an entry costs about
        # twice its record in memory, see `entry_bytes`): decoding the whole 64 MiB cache would
        # add ~0.5 s to the start of a 1M-entry log, and new entries fill the cache anyway.
        first = bisect_left(found.offsets, found.end - min(cache_bytes // 2, RECOVERY_CACHE_BYTES))
        start = found.offsets[first] if first < count else found.end
        tail = records.decode_run(pread_all(fd, found.end - start, start), first + 1, start, path)
        prefix = DiskPrefix(
            path, fd, offsets=found.offsets, end=found.end, tail=tail, cache_bytes=cache_bytes,
            defer_writes=defer_writes,
        )  # fmt: skip
        meta = meta if meta is not None else Meta()
        if meta.epoch < found.epochs.last_epoch:  # a node's epoch is never below its log's
            log.warning(
                "meta epoch %d is below the log's %d: using the log's", meta.epoch, found.epochs.last_epoch
            )
            meta = replace(meta, epoch=found.epochs.last_epoch)
        return Opened(prefix, found.epochs, meta)
    except BaseException:
        os.close(fd)
        raise

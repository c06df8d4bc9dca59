"""`rollback.jsonl`: entries removed from this node's log because they diverged from the master's.

Nothing leaves a log silently. Before a log is truncated, every entry it loses is appended here,
one JSON object per line, `{"seq", "epoch", "kind", "key", "message", "removed_at", "reason"}`, and
the file is fsynced (whatever the log's fsync policy); only then is the log cut. A crash between
the two leaves the entries in both places: the log recovers whole and truncates again later, so a
line may repeat, but no entry is ever only lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from replog.core.entry import Entry
from replog.storage.datadir import fsync_dir

ROLLBACK_FILE = "rollback.jsonl"

log = logging.getLogger(__name__)


def rollback_line(entry: Entry, removed_at: float, reason: str) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "epoch": entry.epoch,
        "kind": entry.kind.name.lower(),
        "key": entry.key,
        "message": entry.message,
        "removed_at": removed_at,
        "reason": reason,
    }


class RollbackFile:
    """The data directory's rollback file, opened for appending; `count` survives restarts.

    Only the store calls `save`, under its store lock."""

    def __init__(self, data_dir: Path, sync_fd: Callable[[int], None]) -> None:
        self.path = data_dir / ROLLBACK_FILE
        self._sync_fd = sync_fd
        self.count = self._count_and_repair()

    def _count_and_repair(self) -> int:
        """Count whole lines; cut a torn last line (a crash mid-append), whose entries are still in
        the log, since the log is cut only after this file is fsynced."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        whole = data.rfind(b"\n") + 1
        if whole < len(data):
            log.warning(
                "torn rollback line cut file=%s offset=%d bytes=%d", self.path, whole, len(data) - whole
            )
            os.truncate(self.path, whole)
        return data.count(b"\n")

    def save(self, pages: Iterable[Sequence[Entry]], removed_at: float, reason: str) -> int:
        """Append one line per entry, page by page (a long suffix is never all in memory), then
        fsync once (the directory too when the file is new). Returns how many entries it saved.
        OSError leaves the file as it was: no torn line, and the entries are still in the log."""
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        count = 0
        try:
            start = os.fstat(fd).st_size
            try:
                for page in pages:
                    lines = (rollback_line(e, removed_at, reason) for e in page)
                    _write_all(
                        fd, b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines)
                    )
                    count += len(page)
                self._sync_fd(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        self.count += count
        return count


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]

"""The data directory's small files: `meta.json` (format version and log id) and `LOCK`.

`entries.dat` itself is the prefix's (`replog.storage.prefix`). Only `DiskStore` calls these, and
`write_meta` only from `DiskStore._adopt`, the one place a log id is adopted.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from replog.core.records import CorruptLog
from replog.storage.prefix import pwrite_all

LOG_FILE = "entries.dat"
META_FILE = "meta.json"
LOCK_FILE = "LOCK"
FORMAT_VERSION = 1


class DataDirInUseError(Exception):
    """Another process holds this data directory: two writers would interleave records."""


def read_meta(meta_path: Path) -> str | None:
    try:
        raw = meta_path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        meta = json.loads(raw)
        version, log_id = meta["format"], meta["log_id"]
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptLog(f"unreadable meta file: {exc!r}", path=meta_path, offset=0) from None
    if version != FORMAT_VERSION or not isinstance(log_id, str) or not log_id:
        raise CorruptLog(
            f"unsupported meta (format {version!r}, log_id {log_id!r})", path=meta_path, offset=0
        )
    return log_id


def write_meta(data_dir: Path, log_id: str) -> None:
    """Replace meta.json atomically and durably: write a temp file, fsync, rename, fsync the directory."""
    tmp = data_dir / (META_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        pwrite_all(fd, json.dumps({"format": FORMAT_VERSION, "log_id": log_id}).encode(), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, data_dir / META_FILE)
    fsync_dir(data_dir)  # makes the rename, and a newly created entries.dat, durable


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_dir(data_dir: Path) -> int:
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirInUseError(f"data directory {data_dir} is in use by another process") from None
    return fd

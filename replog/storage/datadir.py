"""The data directory's small files: `meta.json` (log id, epoch, vote) and `LOCK`.

`entries.dat` itself is the prefix's (`replog.storage.prefix`), `rollback.jsonl` the rollback's
(`replog.storage.rollback`). Only `DiskStore` calls these.

meta.json, format 2: `{"format": 2, "log_id": str | null, "epoch": int, "vote": {"epoch", "for"} | null}`.
Format 1 (`{"format": 1, "log_id"}`, written before epochs existed) reads as epoch 1 with no vote;
the next write turns it into format 2. It is always replaced atomically and fsynced.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from replog.core.epochs import Vote, next_term
from replog.core.errors import StorageUnavailable
from replog.core.records import CorruptLog
from replog.storage.prefix import pwrite_all

LOG_FILE = "entries.dat"
META_FILE = "meta.json"
LOCK_FILE = "LOCK"
FORMAT_VERSION = 2
FIRST_EPOCH = 1  # of a new log, and of every log written before epochs existed


class DataDirInUseError(Exception):
    """Another process holds this data directory: two writers would interleave records."""


@dataclass(frozen=True, slots=True)
class Meta:
    """What meta.json holds. `log_id` is None until a node joins (or creates) a log."""

    log_id: str | None = None
    epoch: int = FIRST_EPOCH
    vote: Vote | None = None

    def to_json(self) -> dict[str, Any]:
        vote = None if self.vote is None else {"epoch": self.vote.epoch, "for": self.vote.candidate}
        return {"format": FORMAT_VERSION, "log_id": self.log_id, "epoch": self.epoch, "vote": vote}


def read_meta(meta_path: Path) -> Meta | None:
    """The meta file's contents, None if there is none; CorruptLog if it cannot be understood."""
    try:
        raw = meta_path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        meta = json.loads(raw)
        return _parse(meta)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CorruptLog(f"unreadable meta file: {exc!r}", path=meta_path, offset=0) from None


def _parse(meta: dict[str, Any]) -> Meta:
    version, log_id = meta["format"], meta["log_id"]
    if version == 1 and isinstance(log_id, str) and log_id:
        return Meta(log_id)
    if version != FORMAT_VERSION or not (log_id is None or (isinstance(log_id, str) and log_id)):
        raise ValueError(f"unsupported meta (format {version!r}, log_id {log_id!r})")
    epoch, raw_vote = meta["epoch"], meta["vote"]
    if not _is_epoch(epoch):
        raise ValueError(f"bad epoch {epoch!r}")
    vote = None
    if raw_vote is not None:
        vote_epoch, candidate = raw_vote["epoch"], raw_vote["for"]
        if not _is_epoch(vote_epoch) or vote_epoch > epoch or not isinstance(candidate, str) or not candidate:
            raise ValueError(f"bad vote {raw_vote!r}")
        vote = Vote(vote_epoch, candidate)
    return Meta(log_id, epoch, vote)


def _is_epoch(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= FIRST_EPOCH


def write_meta(data_dir: Path, meta: Meta) -> None:
    """Replace meta.json atomically and durably: write a temp file, fsync, rename, fsync the directory.

    Always fsynced, whatever the log's fsync policy: an epoch or a vote must never be forgotten by a
    machine crash once acted on."""
    tmp = data_dir / (META_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        pwrite_all(fd, json.dumps(meta.to_json()).encode(), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, data_dir / META_FILE)
    fsync_dir(data_dir)  # makes the rename, and a newly created entries.dat, durable


class MetaFile:
    """The one writer of a data directory's meta.json, and what it says now (`meta`).

    Every change is durable before it shows in `meta`; a failed write (StorageUnavailable) changes
    nothing. Not thread-safe: the store calls it under its store lock."""

    def __init__(self, data_dir: Path, meta: Meta, retry_after_s: float) -> None:
        self._data_dir = data_dir
        self.meta = meta
        self._retry_after_s = retry_after_s

    def adopt_log_id(self, log_id: str) -> None:
        self._write(replace(self.meta, log_id=log_id), f"log id {log_id}")

    def save_term(self, epoch: int, vote_for: str | None) -> bool:
        """Adopt (epoch, vote) per `core.epochs.next_term` (ValueError if refused); False if that
        changes nothing (no write)."""
        new_epoch, vote = next_term(self.meta.epoch, self.meta.vote, epoch, vote_for)
        if (new_epoch, vote) == (self.meta.epoch, self.meta.vote):
            return False
        self._write(replace(self.meta, epoch=new_epoch, vote=vote), f"epoch {new_epoch}")
        return True

    def _write(self, meta: Meta, what: str) -> None:
        try:
            write_meta(self._data_dir, meta)
        except OSError as exc:
            raise StorageUnavailable(
                f"recording {what} in {self._data_dir / META_FILE} failed: {exc}",
                retry_after_s=self._retry_after_s,
            ) from exc
        self.meta = meta


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

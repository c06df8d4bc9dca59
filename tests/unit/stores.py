"""Helpers for the store tests: open disk stores on tmp dirs (closed at teardown), read them whole."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from replog.core.wire import Entry
from replog.storage.disk import DiskStore
from replog.storage.store import MemoryStore, Store
from tests.conftest import wait_for as shared_wait_for

WAIT_S = 5.0


def wait_for(condition: Callable[[], Any], timeout_s: float = WAIT_S) -> None:
    shared_wait_for(condition, timeout_s)


class Opener:
    """Opens stores on tmp dirs and closes every one at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.stores: list[DiskStore] = []

    def __call__(self, name: str = "node", **kwargs: object) -> DiskStore:
        store = DiskStore.open(self.root / name, **kwargs)  # type: ignore[arg-type]
        self.stores.append(store)
        return store


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Opener]:
    opener = Opener(tmp_path)
    yield opener
    for store in opener.stores:
        store.close()


MakeStore = Callable[[str | None], Store]


@pytest.fixture(params=["memory", "disk"])
def make_store(request: pytest.FixtureRequest, open_store: Opener) -> MakeStore:
    """A store of either kind (same contract), its clock fixed at 42.0."""

    def make(log_id: str | None) -> Store:
        if request.param == "memory":
            return MemoryStore(log_id, clock=lambda: 42.0)
        return open_store(new_log_id=log_id, cache_bytes=600, clock=lambda: 42.0)

    return make


def messages(store: Store) -> list[str]:
    return [e.message for e in store.read(1, 1 << 30)]


def entries(first: int, last: int, prefix: str = "m", epoch: int = 1) -> list[Entry]:
    return [Entry(s, f"{prefix}{s}", epoch=epoch) for s in range(first, last + 1)]


def log_path(store: DiskStore) -> Path:
    return store.data_dir / "entries.dat"


def meta_of(store: DiskStore) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((store.data_dir / "meta.json").read_bytes())
    return meta


class Disk:
    """The store's disk, with faults: `full` (a write stores `room` bytes, then ENOSPC) and a
    broken fsync. Installed over os.pwrite, which the store's file writes and probes go through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        self.room = 0
        self.fsync_error = False
        self._pwrite = os.pwrite
        monkeypatch.setattr("replog.storage.prefix.os.pwrite", self.pwrite)

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        if not self.full:
            return self._pwrite(fd, data, offset)
        if self.room <= 0:
            raise OSError(28, "No space left on device")
        written = self._pwrite(fd, bytes(data)[: self.room], offset)
        self.room -= written
        return written

    def sync(self, fd: int) -> None:
        if self.fsync_error:
            raise OSError(5, "Input/output error")
        os.fdatasync(fd)

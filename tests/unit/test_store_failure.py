"""A full disk never lies (issue 11 C6), with the disk's faults injected: each rule of a failed store.

A failed write or fsync fails the store with its reason; what was not durable is dropped (its seqs
are reused: never acknowledged); the file is cut back to the durable end; writes are refused with
StorageUnavailable (503); the status listener hears the failure and the recovery; the flusher
retries every retry_s and clears the failure once the disk works, after reading the records back
if an fsync failed. `tests/cluster/test_full_disk.py` does it with a real full disk.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from replog.core import records
from replog.core.errors import StorageUnavailable
from replog.core.wire import Entry
from replog.storage import disk as disk_module
from replog.storage.disk import DiskStore, FsyncPolicy
from replog.storage.store import StorageStatus
from tests.unit.stores import Disk, Opener, entries, log_path, messages, wait_for

RETRY_S = 0.01


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    return Disk(monkeypatch)


def failing_store(open_store: Opener, disk: Disk, **kwargs: Any) -> tuple[DiskStore, list[StorageStatus]]:
    store = open_store(sync_fd=disk.sync, retry_s=RETRY_S, **kwargs)
    heard: list[StorageStatus] = []
    store.set_status_listener(heard.append)
    return store, heard


def size_of(store: DiskStore) -> int:
    return log_path(store).stat().st_size


def record_bytes(*messages: str) -> int:
    return len(records.encode_batch([Entry(i + 1, m) for i, m in enumerate(messages)])[0])


def test_a_full_disk_fails_the_store_drops_what_was_not_durable_and_recovers(
    open_store: Opener, disk: Disk, caplog: pytest.LogCaptureFixture
) -> None:
    store, heard = failing_store(open_store, disk, new_log_id="L1", clock=lambda: 0.0)
    store.append(["a", "b"])
    wait_for(lambda: store.stored_seq == 2)
    disk.full, disk.room = True, 10  # the group's write stores 10 bytes, then the disk is full
    with caplog.at_level(logging.WARNING):
        assert [e.seq for e in store.append(["c", "d"])] == [3, 4]
        wait_for(lambda: heard)
    status = store.status()
    assert not status.ok and status.reason is not None and "No space left on device" in status.reason
    assert heard == [StorageStatus(False, status.reason, 1, 2)], "generation 1, durable up to seq 2"
    assert "dropped entries never durable" in caplog.text and "seqs=3..4" in caplog.text
    assert (store.stored_seq, store.generation, messages(store)) == (2, 1, ["a", "b"]), "reads still work"
    wait_for(lambda: size_of(store) == record_bytes("a", "b"))  # the partial write is cut off
    with pytest.raises(StorageUnavailable) as refused:
        store.append(["e"])
    assert (refused.value.status, refused.value.code) == (503, "storage_unavailable")
    assert "nothing was stored" in refused.value.detail and refused.value.extra == {"retry_after_s": RETRY_S}
    disk.full = False
    wait_for(lambda: store.status().ok)
    assert heard[-1] == StorageStatus(True, None, 1, 2)
    assert [e.seq for e in store.append(["c2"])] == [3], "a dropped entry's seq is taken again"
    wait_for(lambda: store.stored_seq == 3)
    store.close()
    assert messages(open_store()) == ["a", "b", "c2"]


def test_an_apply_waiting_for_its_fsync_gets_the_honest_error(open_store: Opener, disk: Disk) -> None:
    store, heard = failing_store(open_store, disk)
    assert store.apply("L1", entries(1, 1)) == 1
    disk.full = True
    with pytest.raises(StorageUnavailable, match="No space left"):
        store.apply("L1", entries(2, 3))
    assert (store.stored_seq, messages(store)) == (1, ["m1"])
    with pytest.raises(StorageUnavailable):
        store.apply("L1", entries(2, 3))  # refused at once while failed
    disk.full = False
    wait_for(lambda: store.status().ok)
    assert store.apply("L1", entries(2, 3)) == 3
    assert [s.ok for s in heard] == [False, True]


def test_a_failed_fsync_is_read_back_before_the_failure_clears(
    open_store: Opener, disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[tuple[int, int]] = []
    real_verify = disk_module.verify_records

    def verify(fd: int, path: Any, end: int, count: int) -> None:
        verified.append((end, count))
        real_verify(fd, path, end, count)

    monkeypatch.setattr(disk_module, "verify_records", verify)
    store, heard = failing_store(open_store, disk, new_log_id="L1", clock=lambda: 0.0)
    store.append(["a"])
    wait_for(lambda: store.stored_seq == 1)
    disk.fsync_error = True
    store.append(["b"])
    wait_for(lambda: heard)
    assert (
        heard[0].reason is not None and "fsync" in heard[0].reason and "Input/output error" in heard[0].reason
    )
    assert (store.stored_seq, messages(store)) == (1, ["a"])
    fd_before = store._prefix.fd
    disk.fsync_error = False
    wait_for(lambda: store.status().ok)
    assert verified == [(record_bytes("a"), 1)]
    assert store._prefix.fd != fd_before, "the file was reopened: the old descriptor may keep lying"
    assert store.append(["b2"])[0].seq == 2
    wait_for(lambda: store.stored_seq == 2)


def test_records_that_do_not_read_back_keep_the_store_failed(open_store: Opener, disk: Disk) -> None:
    store, heard = failing_store(open_store, disk, new_log_id="L1")
    store.append(["a", "b"])
    wait_for(lambda: store.stored_seq == 2)
    disk.fsync_error = True
    store.append(["c"])
    wait_for(lambda: heard)
    with open(log_path(store), "r+b") as f:  # the disk lost what the page cache showed
        f.seek(records.HEADER_SIZE + records.MIN_PAYLOAD)
        f.write(b"X")
    disk.fsync_error = False
    wait_for(lambda: "read-back" in (store.status().reason or ""))
    assert not store.status().ok and store._failure.permanent
    with pytest.raises(StorageUnavailable, match="read-back"):
        store.append(["d"])


def test_an_interval_store_keeps_what_it_acknowledged_across_a_failed_fsync(
    open_store: Opener, disk: Disk
) -> None:
    store, heard = failing_store(
        open_store, disk, new_log_id="L1", fsync=FsyncPolicy.INTERVAL, fsync_interval_s=0.001
    )
    disk.fsync_error = True
    store.append(["a"])
    assert store.stored_seq == 1, "stored on write under INTERVAL"
    wait_for(lambda: heard)
    assert (heard[0].durable_seq, store.stored_seq, messages(store)) == (1, 1, ["a"]), "nothing dropped"
    disk.fsync_error = False
    wait_for(lambda: store.status().ok)
    assert store.append(["b"])[0].seq == 2


def test_a_write_that_fails_under_never_fails_the_store_at_once(open_store: Opener, disk: Disk) -> None:
    store, heard = failing_store(
        open_store, disk, new_log_id="L1", fsync=FsyncPolicy.NEVER, clock=lambda: 0.0
    )
    store.append(["a"])
    disk.full, disk.room = True, 5
    with pytest.raises(StorageUnavailable, match="No space left"):
        store.append(["b"])
    assert (size_of(store), store.stored_seq, [s.ok for s in heard]) == (record_bytes("a"), 1, [False])
    disk.full = False
    wait_for(lambda: store.status().ok)
    assert store.append(["b"])[0].seq == 2
    store.close()
    assert messages(open_store()) == ["a", "b"]


def test_an_append_begun_before_a_failure_is_refused_after_it(open_store: Opener, disk: Disk) -> None:
    store, heard = failing_store(open_store, disk, new_log_id="L1")
    generation = store.generation
    disk.full = True
    store.append(["lost"])
    wait_for(lambda: heard)
    disk.full = False
    wait_for(lambda: store.status().ok)
    with pytest.raises(StorageUnavailable, match="failed and recovered since this append began"):
        store.append(["x"], generation=generation)
    assert store.append(["x"], generation=store.generation)[0].seq == 1


def test_a_failed_cut_after_a_truncation_fails_the_store_until_the_file_is_cut(
    open_store: Opener, disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, heard = failing_store(open_store, disk, new_log_id="L1", clock=lambda: 0.0)
    store.append(["a", "b", "c"])
    wait_for(lambda: store.stored_seq == 3)
    real_ftruncate = os.ftruncate
    failures = [OSError(5, "Input/output error")]

    def ftruncate(fd: int, size: int) -> None:
        if failures:
            raise failures.pop()
        real_ftruncate(fd, size)

    monkeypatch.setattr("replog.storage.disk.os.ftruncate", ftruncate)
    assert store.truncate_after(1, "x") == 2
    assert (messages(store), heard[0].ok) == (["a"], False)
    wait_for(lambda: store.status().ok)
    assert size_of(store) == record_bytes("a")
    store.close()
    assert messages(open_store()) == ["a"]


def test_closing_a_failed_store_stops_its_flusher(open_store: Opener, disk: Disk) -> None:
    store, heard = failing_store(open_store, disk, new_log_id="L1")
    disk.full = True
    store.append(["a"])
    wait_for(lambda: heard)
    store.close()
    assert not store._flusher.is_alive()

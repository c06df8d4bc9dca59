"""Truncation into the rollback file: nothing leaves a log silently, and a crash halfway loses nothing."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from replog.core import records
from replog.core.entry import Kind, NewEntry
from replog.core.epochs import Position
from replog.core.errors import LogMismatch, StorageUnavailable, WritesInFlight
from replog.core.matching import BatchHead, crc_of
from replog.core.wire import Entry
from replog.storage.rollback import RollbackFile
from replog.storage.store import MemoryStore
from tests.unit.stores import MakeStore, Opener, log_path, messages, wait_for


def rollback_lines(data_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (data_dir / "rollback.jsonl").read_text().splitlines()]


def test_truncate_after_saves_the_suffix_then_cuts_the_log(
    open_store: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(new_log_id="L1", clock=lambda: 42.0)
    store.append(["a", NewEntry("b", key="id-b")])
    store.save_term(2, None)
    store.append([NewEntry.epoch_start(), "d"])
    wait_for(lambda: store.stored_seq == 4)
    with caplog.at_level(logging.WARNING, logger="replog.storage.disk"):
        assert store.truncate_after(1, "diverged from the master of epoch 3") == 3
    assert (store.stored_seq, messages(store), store.rolled_back_entries) == (1, ["a"], 3)
    assert (store.last_position(), store.bounds()) == (Position(1, 1), [(1, 1)])
    assert log_path(store).stat().st_size == len(records.encode(Entry(1, "a", 42.0)))
    reason = "diverged from the master of epoch 3"
    assert rollback_lines(store.data_dir) == [
        {
            "seq": 2,
            "epoch": 1,
            "kind": "message",
            "key": "id-b",
            "message": "b",
            "removed_at": 42.0,
            "reason": reason,
        },
        {
            "seq": 3,
            "epoch": 2,
            "kind": "epoch_start",
            "key": None,
            "message": "",
            "removed_at": 42.0,
            "reason": reason,
        },
        {
            "seq": 4,
            "epoch": 2,
            "kind": "message",
            "key": None,
            "message": "d",
            "removed_at": 42.0,
            "reason": reason,
        },
    ]
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "rolled back seqs=2..4 count=3" in warning and reason in warning
    assert [e.seq for e in store.append(["e"])] == [2], "the seqs are taken again, in the store's epoch"
    wait_for(lambda: store.stored_seq == 2)
    store.close()
    again = open_store()
    assert (messages(again), again.rolled_back_entries, again.bounds()) == (["a", "e"], 3, [(1, 1), (2, 2)])


def test_truncating_at_or_past_the_end_removes_nothing(make_store: MakeStore) -> None:
    store = make_store("L1")
    store.append(["a"])
    wait_for(lambda: store.stored_seq == 1)
    assert store.truncate_after(1, "x") == store.truncate_after(7, "x") == 0
    assert (store.stored_seq, store.rolled_back_entries) == (1, 0)
    with pytest.raises(ValueError):
        store.truncate_after(-1, "x")


def test_a_secondary_truncates_a_diverged_suffix_and_applies_the_masters(make_store: MakeStore) -> None:
    store = make_store(None)
    store.apply("L1", [Entry(1, "a"), Entry(2, "b"), Entry(3, "c", epoch=2)])
    assert store.truncate_after(2, "log matching") == 1
    assert store.apply("L1", [Entry(3, "C", epoch=3), Entry(4, "D", epoch=3)]) == 4
    assert messages(store) == ["a", "b", "C", "D"]
    assert (store.rolled_back_entries, store.bounds()) == (1, [(1, 1), (3, 3)])
    if isinstance(store, MemoryStore):
        assert store.rolled_back == [(Entry(3, "c", 42.0, 2), 42.0, "log matching")]


def test_cluster_mode_apply_rolls_a_diverged_suffix_back_then_appends(
    make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(None)
    store.apply("L1", [Entry(1, "a"), Entry(2, "b", epoch=2, key="k-b"), Entry(3, "c", epoch=2)])
    assert store.keys_held == 1
    head = BatchHead(3, 1, 1, crc_of("a"))  # the master of epoch 3: seq 2 on is an epoch-3 record
    batch = [Entry(2, "", epoch=3, kind=Kind.EPOCH_START), Entry(3, "d", epoch=3)]
    with pytest.raises(LogMismatch):  # static mode: refused, nothing changed
        store.apply("L1", batch, head)
    assert (messages(store), store.rolled_back_entries) == (["a", "b", "c"], 0)
    with caplog.at_level(logging.WARNING):
        assert store.apply("L1", batch, head, rollback=True) == 3
    assert (messages(store), store.rolled_back_entries) == (["a", "", "d"], 2)
    assert store.last_position() == Position(3, 3)
    assert "rolled back seqs=2..3 count=2 reason=diverged from the master of epoch 3 at seq 2" in caplog.text
    assert store.keys_held == 0  # a rolled-back key leaves the dedup window: a retry stores it again
    if isinstance(store, MemoryStore):
        assert [e.message for e, _, _ in store.rolled_back] == ["b", "c"]
    else:
        assert [line["message"] for line in rollback_lines(store.data_dir)] == ["b", "c"]  # type: ignore[attr-defined]
    # A repeat of the same batch is a duplicate now; nothing more is rolled back.
    assert store.apply("L1", batch, head, rollback=True) == 3
    assert store.rolled_back_entries == 2


def test_cluster_mode_never_rolls_back_entries_of_the_senders_own_epoch(make_store: MakeStore) -> None:
    store = make_store(None)
    store.apply("L1", [Entry(1, "a"), Entry(2, "b", epoch=3)])
    head = BatchHead(3, 1, 1, crc_of("a"))
    with pytest.raises(LogMismatch, match="refusing to roll them back"):
        store.apply("L1", [Entry(2, "other", epoch=3)], head, rollback=True)
    assert (messages(store), store.rolled_back_entries) == (["a", "b"], 0)


def test_entries_still_being_written_are_not_truncated(open_store: Opener) -> None:
    release = threading.Event()
    store = open_store(new_log_id="L1", sync_fd=lambda fd: release.wait(5) and None)
    store.append(["a", "b"])
    with pytest.raises(WritesInFlight, match=r"entries 1\.\.2 are still being written") as refused:
        store.truncate_after(0, "x")
    assert refused.value.status == 503
    assert not (store.data_dir / "rollback.jsonl").exists()
    release.set()
    wait_for(lambda: store.stored_seq == 2)
    assert store.truncate_after(0, "x") == 2


def test_the_rollback_file_is_fsynced_before_the_log_is_cut(
    open_store: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []

    def sync(fd: int) -> None:
        events.append("sync " + Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        os.fdatasync(fd)

    store = open_store(new_log_id="L1", sync_fd=sync)
    store.append(["a", "b", "c"])
    wait_for(lambda: store.stored_seq == 3)
    real_ftruncate = os.ftruncate

    def ftruncate(fd: int, size: int) -> None:
        events.append("cut " + Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        real_ftruncate(fd, size)

    monkeypatch.setattr("replog.storage.disk.os.ftruncate", ftruncate)
    events.clear()
    store.truncate_after(1, "x")
    assert events == ["sync rollback.jsonl", "cut entries.dat", "sync entries.dat"]


def test_a_crash_between_the_rollback_write_and_the_cut_loses_nothing(open_store: Opener) -> None:
    """The first half of a truncation (the rollback file written and fsynced), then a crash before
    the log is cut: the log reopens whole, the rollback file still holds the entries, and the
    truncation done again leaves each entry in the log or in the file, never in neither."""
    store = open_store(new_log_id="L1", clock=lambda: 7.0)
    store.append(["a", "b", "c"])
    wait_for(lambda: store.stored_seq == 3)
    suffix = store.read(2, 2)
    store.close()
    RollbackFile(store.data_dir, os.fsync).save([suffix], 7.0, "x")  # the first half; then the crash
    again = open_store()
    assert (messages(again), again.rolled_back_entries) == (["a", "b", "c"], 2)
    assert [line["message"] for line in rollback_lines(again.data_dir)] == ["b", "c"]
    assert again.truncate_after(1, "x") == 2
    assert messages(again) == ["a"]
    assert [line["message"] for line in rollback_lines(again.data_dir)] == ["b", "c", "b", "c"]


def test_a_torn_rollback_line_is_cut_at_open(open_store: Opener, caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(new_log_id="L1")
    store.append(["a", "b"])
    wait_for(lambda: store.stored_seq == 2)
    store.truncate_after(1, "x")
    store.close()
    path = store.data_dir / "rollback.jsonl"
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"seq": 9, "mess')
    with caplog.at_level(logging.WARNING, logger="replog.storage.rollback"):
        again = open_store()
    assert again.rolled_back_entries == 1
    assert path.read_bytes() == whole
    assert "torn rollback line cut" in caplog.text


def test_a_failed_rollback_write_removes_nothing(open_store: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(new_log_id="L1")
    store.append(["a", "b"])
    wait_for(lambda: store.stored_seq == 2)
    store.truncate_after(1, "first")
    store.append(["c"])
    wait_for(lambda: store.stored_seq == 2)
    before = (store.data_dir / "rollback.jsonl").read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        monkeypatch.setattr("replog.storage.rollback.os.write", no_space)
        return real_write(fd, bytes(data)[:10])

    def no_space(fd: int, data: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("replog.storage.rollback.os.write", half_then_full)
    with pytest.raises(StorageUnavailable, match="nothing was removed"):
        store.truncate_after(1, "second")
    assert (store.data_dir / "rollback.jsonl").read_bytes() == before, "no torn line left"
    assert (messages(store), store.rolled_back_entries, store.status().ok) == (["a", "c"], 1, True)

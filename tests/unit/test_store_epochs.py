"""A store's term (epoch and vote) and its epoch index: meta.json format 2, old data directories,
keys and control records, the same contract for the memory and the disk store."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from replog.core import records
from replog.core.entry import Kind, NewEntry
from replog.core.epochs import Position, Vote
from replog.core.errors import LogConflict, LogMismatch, StorageUnavailable
from replog.core.wire import Entry
from replog.storage.disk import CorruptLog, FsyncPolicy
from tests.unit.stores import MakeStore, Opener, entries, log_path, messages, meta_of, wait_for

V1_DATA = Path(__file__).parent / "data" / "v1-datadir"


def test_a_new_log_is_at_epoch_1_with_no_vote(open_store: Opener) -> None:
    store = open_store(new_log_id="L1")
    assert (store.epoch, store.vote, store.last_position(), store.bounds()) == (1, None, Position(0, 0), [])
    assert meta_of(store) == {"format": 2, "log_id": "L1", "epoch": 1, "vote": None}
    secondary = open_store("s1")
    assert (secondary.log_id, secondary.epoch, secondary.vote) == (None, 1, None)
    assert not (secondary.data_dir / "meta.json").exists(), "nothing to record yet"


@pytest.mark.parametrize("policy", list(FsyncPolicy))
def test_save_term_is_fsynced_before_it_returns_under_every_policy(
    open_store: Opener, policy: FsyncPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(new_log_id="L1", fsync=policy)
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr("replog.storage.datadir.os.fsync", recording_fsync)
    store.save_term(3, "http://b:1")
    assert synced == [str(store.data_dir / "meta.json.tmp"), str(store.data_dir)]
    assert meta_of(store) == {
        "format": 2,
        "log_id": "L1",
        "epoch": 3,
        "vote": {"epoch": 3, "for": "http://b:1"},
    }
    store.close()
    again = open_store(fsync=policy)
    assert (again.epoch, again.vote) == (3, Vote(3, "http://b:1"))


def test_epochs_never_decrease_and_a_vote_is_given_once_per_epoch(make_store: MakeStore) -> None:
    store = make_store("L1")
    store.save_term(2, None)
    store.save_term(2, "A")
    assert (store.epoch, store.vote) == (2, Vote(2, "A"))
    with pytest.raises(ValueError, match="epoch 1 is below this node's epoch 2"):
        store.save_term(1, "A")
    with pytest.raises(ValueError, match="already voted for A in epoch 2"):
        store.save_term(2, "B")
    store.save_term(2, None)  # hearing from the master of epoch 2 keeps the vote
    store.save_term(2, "A")
    assert (store.epoch, store.vote) == (2, Vote(2, "A"))
    store.save_term(5, None)
    assert (store.epoch, store.vote) == (5, None)


def test_a_failed_meta_write_changes_nothing(open_store: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(new_log_id="L1")
    store.save_term(2, "A")

    def no_space(*args: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr("replog.storage.datadir.os.replace", no_space)
        with pytest.raises(StorageUnavailable, match=r"epoch 3 in .*meta\.json failed.*No space left"):
            store.save_term(3, "B")
    assert (store.epoch, store.vote) == (2, Vote(2, "A"))
    assert meta_of(store)["epoch"] == 2
    store.append(["still writable"])
    wait_for(lambda: store.stored_seq == 1)


def test_a_node_without_a_log_keeps_its_term(open_store: Opener) -> None:
    """A fresh member may vote before any log exists: meta.json then names no log yet."""
    store = open_store("fresh")
    store.save_term(4, "http://c:1")
    assert meta_of(store) == {
        "format": 2,
        "log_id": None,
        "epoch": 4,
        "vote": {"epoch": 4, "for": "http://c:1"},
    }
    store.close()
    again = open_store("fresh")
    assert (again.log_id, again.epoch, again.vote) == (None, 4, Vote(4, "http://c:1"))
    assert again.apply("L1", entries(1, 1, epoch=4)) == 1
    assert meta_of(again) == {
        "format": 2,
        "log_id": "L1",
        "epoch": 4,
        "vote": {"epoch": 4, "for": "http://c:1"},
    }


@pytest.mark.parametrize(
    "meta",
    [
        {"format": 3, "log_id": "L1", "epoch": 1, "vote": None},
        {"format": 2, "log_id": "L1", "epoch": 0, "vote": None},
        {"format": 2, "log_id": "L1", "epoch": True, "vote": None},
        {"format": 2, "log_id": "L1", "epoch": 2, "vote": {"epoch": 3, "for": "A"}},
        {"format": 2, "log_id": "L1", "epoch": 2, "vote": {"epoch": 2, "for": ""}},
        {"format": 2, "log_id": "", "epoch": 2, "vote": None},
        {"format": 2, "log_id": "L1", "epoch": 2},
        {"format": 1, "log_id": None},
    ],
)
def test_a_meta_file_it_cannot_understand_is_refused(open_store: Opener, meta: dict[str, object]) -> None:
    data_dir = open_store.root / "node"
    data_dir.mkdir()
    (data_dir / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CorruptLog, match=r"meta"):
        open_store()


def test_entries_in_a_log_whose_meta_names_none_are_refused(open_store: Opener) -> None:
    store = open_store(new_log_id="L1")
    store.append(["a"])
    store.close()
    (store.data_dir / "meta.json").write_text(
        json.dumps({"format": 2, "log_id": None, "epoch": 1, "vote": None})
    )
    with pytest.raises(CorruptLog, match=r"names no log but entries\.dat holds 1 entries"):
        open_store()


# --- data directories written before epochs --------------------------------------------------------------


def copy_v1(open_store: Opener, name: str) -> Path:
    target = open_store.root / name
    shutil.copytree(V1_DATA / name, target)
    return target


def test_a_format_1_master_directory_opens_as_epoch_1_and_continues_in_v2(open_store: Opener) -> None:
    copy_v1(open_store, "master")
    before = (open_store.root / "master" / "entries.dat").read_bytes()
    store = open_store("master")
    assert (store.log_id, store.epoch, store.vote, store.stored_seq) == ("5f0c1a9e-v1-fixture", 1, None, 3)
    assert store.read(1, 10) == [
        Entry(1, "first", 1764590000.25),
        Entry(2, "second", 1764590000.25),
        Entry(3, "héllo wörld", 1764590000.25),
    ]
    assert (store.bounds(), store.last_position()) == ([(1, 1)], Position(1, 3))
    store.append(["fourth"])
    store.save_term(2, None)  # rewrites meta.json as format 2
    store.append([NewEntry("fifth", key="k5")])
    wait_for(lambda: store.stored_seq == 5)
    store.close()
    data = log_path(store).read_bytes()
    assert data.startswith(before), "the old records are kept as they were"
    assert data[len(before) : len(before) + 4] == records.MAGIC, "new writes are v2"
    again = open_store("master")
    assert meta_of(again) == {"format": 2, "log_id": "5f0c1a9e-v1-fixture", "epoch": 2, "vote": None}
    assert messages(again) == ["first", "second", "héllo wörld", "fourth", "fifth"]
    assert [(e.epoch, e.key) for e in again.read(4, 2)] == [(1, None), (2, "k5")]
    assert (again.bounds(), again.last_position()) == ([(1, 1), (2, 5)], Position(2, 5))


def test_a_format_1_secondary_directory_opens_and_applies_on(open_store: Opener) -> None:
    copy_v1(open_store, "secondary")
    store = open_store("secondary")
    assert (store.log_id, store.epoch, store.stored_seq) == ("5f0c1a9e-v1-fixture", 1, 2)
    assert store.apply("5f0c1a9e-v1-fixture", [Entry(2, "second"), Entry(3, "héllo wörld")]) == 3
    with pytest.raises(LogMismatch):
        store.apply("5f0c1a9e-v1-fixture", [Entry(1, "first", epoch=2)])


# --- the epoch index, keys and control records ------------------------------------------------------------


def test_recovery_rebuilds_the_epoch_index(open_store: Opener) -> None:
    store = open_store(new_log_id="L1")
    store.append(["a", "b"])
    store.save_term(2, None)
    store.append([NewEntry.epoch_start(), NewEntry("c", key="id-c")])
    store.save_term(5, "me")
    store.append([NewEntry.epoch_start()])
    wait_for(lambda: store.stored_seq == 5)
    assert store.bounds() == [(1, 1), (2, 3), (5, 5)]
    store.close()
    again = open_store()
    assert again.bounds() == [(1, 1), (2, 3), (5, 5)]
    assert again.bounds(newest=1) == [(5, 5)]
    assert again.last_position() == Position(5, 5)
    assert [again.epoch_at(s) for s in range(6)] == [0, 1, 1, 2, 2, 5]
    assert [(e.kind, e.key) for e in again.read(3, 3)] == [
        (Kind.EPOCH_START, None),
        (Kind.MESSAGE, "id-c"),
        (Kind.EPOCH_START, None),
    ]
    assert again.append(["d"])[0].epoch == 5, "a master appends in its own epoch"


def test_master_append_in_the_stores_epoch_with_keys(make_store: MakeStore) -> None:
    store = make_store("L1")
    store.save_term(3, None)
    appended = store.append([NewEntry.epoch_start(), NewEntry("a", key="k-a"), "b"])
    assert appended == [
        Entry(1, "", 42.0, 3, Kind.EPOCH_START),
        Entry(2, "a", 42.0, 3, Kind.MESSAGE, "k-a"),
        Entry(3, "b", 42.0, 3),
    ]
    wait_for(lambda: store.stored_seq == 3)
    assert store.read(1, 10) == appended
    assert (store.last_position(), store.bounds()) == (Position(3, 3), [(3, 1)])


def test_secondary_apply_keeps_each_entrys_epoch(make_store: MakeStore) -> None:
    store = make_store(None)
    assert store.apply("L1", entries(1, 2, epoch=1) + entries(3, 4, epoch=3)) == 4
    assert (store.bounds(), store.last_position(), store.epoch_at(2)) == ([(1, 1), (3, 3)], Position(3, 4), 1)
    with pytest.raises(ValueError, match="not held"):
        store.epoch_at(5)
    with pytest.raises(LogMismatch, match="epoch 3"):
        store.apply("L1", entries(4, 4, epoch=2))
    with pytest.raises(LogConflict, match="below the epoch 3"):
        store.apply("L1", entries(5, 5, epoch=2))
    assert store.stored_seq == 4


def test_last_position_is_that_of_the_last_stored_entry(open_store: Opener) -> None:
    release = threading.Event()
    store = open_store(new_log_id="L1", sync_fd=lambda fd: release.wait(5) and None)
    store.save_term(2, None)
    store.append(["a"])
    assert store.last_position() == Position(0, 0), "written, not yet durable"
    release.set()
    wait_for(lambda: store.last_position() == Position(2, 1))


def test_a_store_opens_at_least_at_its_logs_last_epoch(open_store: Opener) -> None:
    store = open_store(new_log_id="L1")
    store.save_term(4, None)
    store.append(["a"])
    store.close()
    (store.data_dir / "meta.json").write_text(
        json.dumps({"format": 2, "log_id": "L1", "epoch": 2, "vote": None})
    )
    again = open_store()
    assert again.epoch == 4

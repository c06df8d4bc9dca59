"""DiskStore on a temp directory: recovery, identity, group commit, paging, and the Store contract."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replog.core import records
from replog.core.entry import Kind
from replog.core.errors import LogIdMismatch, LogMismatch, ShuttingDown
from replog.core.matching import BatchHead, crc_of
from replog.core.wire import Entry
from replog.storage.disk import CorruptLog, DataDirInUseError, DiskStore, FsyncPolicy, StorageError
from replog.storage.failure import StorageFailure
from tests.unit.stores import WAIT_S, MakeStore, Opener, entries, log_path, messages, wait_for

# --- restart and recovery ---------------------------------------------------------------------------


def test_restart_keeps_log_id_and_seq_numbering(open_store: Opener) -> None:
    store = open_store(new_log_id="L1")
    store.append(["a", "b", "c"])
    store.close()
    again = open_store(new_log_id="ignored-for-an-existing-log")
    assert (again.log_id, again.stored_seq) == ("L1", 3)
    assert [e.seq for e in again.append(["d"])] == [4]
    wait_for(lambda: again.stored_seq == 4)
    assert messages(again) == ["a", "b", "c", "d"]


def test_torn_tail_is_truncated_with_a_warning(open_store: Opener, caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(new_log_id="L1")
    store.append([f"message {i}" for i in range(10)])
    path = log_path(store)
    store.close()
    size = path.stat().st_size
    last_start = size - len(records.encode(Entry(10, "message 9")))
    os.truncate(path, size - 5)
    with caplog.at_level(logging.WARNING, logger="replog.storage.disk"):
        again = open_store()
    assert again.stored_seq == 9
    assert messages(again)[-1] == "message 8"
    assert path.stat().st_size == last_start
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(path) in warning and f"offset={last_start}" in warning
    assert again.append(["new"])[0].seq == 10


def test_flipped_byte_mid_file_refuses_to_start(open_store: Opener) -> None:
    store = open_store(new_log_id="L1")
    store.append(["first", "second", "third"])
    path = log_path(store)
    store.close()
    second = len(records.encode(Entry(1, "first")))
    data = bytearray(path.read_bytes())
    data[second + records.HEADER_SIZE + 18] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptLog) as exc:
        open_store()
    assert exc.value.path == path and exc.value.offset == second
    assert str(path) in str(exc.value) and f"offset {second}" in str(exc.value)
    assert exc.value.body()["error"] == "corrupt_log"
    assert path.stat().st_size == len(data), "a refused log is left untouched"


def test_a_record_damaged_after_start_is_never_served(open_store: Opener) -> None:
    store = open_store(new_log_id="L1", cache_bytes=0)
    store.append(["first", "second"])
    wait_for(lambda: store.stored_seq == 2)
    with open(log_path(store), "r+b") as f:
        f.seek(records.HEADER_SIZE + 17)
        f.write(b"X")
    with pytest.raises(CorruptLog):
        store.read(1, 10)


def test_records_without_meta_refuse_to_start(open_store: Opener) -> None:
    store = open_store(new_log_id="L1")
    store.append(["a"])
    store.close()
    (store.data_dir / "meta.json").unlink()
    with pytest.raises(CorruptLog, match=r"meta\.json is missing"):
        open_store(new_log_id="L2")


def test_one_process_per_data_dir(open_store: Opener) -> None:
    open_store(new_log_id="L1")
    with pytest.raises(DataDirInUseError):
        open_store(new_log_id="L1")


# --- secondary ---------------------------------------------------------------------------------------


def test_secondary_adopts_log_id_durably_and_refuses_another(open_store: Opener) -> None:
    store = open_store()
    assert store.log_id is None
    assert store.apply("L1", entries(1, 3)) == 3
    store.close()
    again = open_store()
    assert (again.log_id, again.stored_seq) == ("L1", 3)
    with pytest.raises(LogIdMismatch):
        again.apply("L2", entries(4, 4))
    assert again.stored_seq == 3


def no_space(*args: object) -> None:
    raise OSError(28, "No space left on device")


def test_a_failed_log_id_write_adopts_nothing_and_the_next_batch_retries(
    open_store: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store()
    with monkeypatch.context() as patch:
        patch.setattr("replog.storage.disk.os.replace", no_space)  # meta.json cannot be replaced
        with pytest.raises(StorageError, match=r"log id L1 in .*meta\.json failed.*No space left"):
            store.apply("L1", entries(1, 2))
    assert (store.log_id, store.stored_seq) == (None, 0), "unnamed, and nothing applied"
    assert log_path(store).stat().st_size == 0
    assert store.apply("L1", entries(1, 2)) == 2, "a meta write failure does not break the store"
    assert store.log_id == "L1"
    store.close()
    assert open_store().log_id == "L1"


def flushers() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "replog-flusher")


def test_a_new_log_whose_id_cannot_be_written_does_not_open(
    open_store: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = flushers()
    with monkeypatch.context() as patch:
        patch.setattr("replog.storage.disk.os.replace", no_space)
        with pytest.raises(StorageError, match=r"meta\.json"):
            DiskStore.open(open_store.root / "m", new_log_id="L1")
    assert flushers() == before, "the half-opened store stopped its flusher"
    store = open_store("m", new_log_id="L1")  # and released the directory's lock
    assert store.log_id == "L1"


def test_storage_failure_keeps_the_first_reason_until_cleared_and_logs_each_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failure = StorageFailure(Path("node/entries.dat"), retry_after_s=2.0)
    failure.check()  # nothing recorded: no error
    assert failure.reason is None
    with caplog.at_level(logging.INFO, logger="replog.storage.failure"):
        first = failure.record("fsync of entries.dat failed", verify=True)
        later = failure.record("writing entries.dat failed")
        assert failure.reason == "fsync of entries.dat failed" and failure.needs_verify
        assert first.status == 503 and first.code == "storage_unavailable"
        assert first.extra == {"retry_after_s": 2.0} and "nothing was stored" in first.detail
        assert later.detail == first.detail
        with pytest.raises(StorageError, match=r"fsync of entries\.dat failed"):
            failure.check()
        assert failure.clear() == "fsync of entries.dat failed"
        failure.check()
        assert (failure.reason, failure.needs_verify) == (None, False)
    assert [r.getMessage() for r in caplog.records] == [
        "log store failed file=node/entries.dat reason=fsync of entries.dat failed; refusing writes until it "
        "recovers",
        "log store recovered file=node/entries.dat; accepting writes again (it failed: fsync of entries.dat "
        "failed)",
    ]


def test_a_permanent_failure_is_never_cleared() -> None:
    failure = StorageFailure(Path("entries.dat"))
    failure.record("the log flusher crashed", permanent=True)
    assert failure.clear() is None
    assert failure.reason == "the log flusher crashed"


def test_apply_is_idempotent_and_writes_only_contiguous_entries(open_store: Opener) -> None:
    store = open_store(cache_bytes=0)  # duplicates are checked against records read back from disk
    assert store.apply("L1", entries(1, 2)) == 2
    with pytest.raises(LogMismatch, match="past this log's last seq 2"):
        store.apply("L1", entries(4, 6))  # entries past a gap are refused, never held
    assert store.apply("L1", entries(1, 2)) == 2
    assert log_path(store).stat().st_size == len(records.encode_batch(entries(1, 2))[0])
    with pytest.raises(LogMismatch, match="other content"):
        store.apply("L1", [Entry(2, "other")])
    assert store.apply("L1", entries(2, 6)) == 6
    assert messages(store) == [f"m{s}" for s in range(1, 7)]
    store.close()
    assert messages(open_store()) == [f"m{s}" for s in range(1, 7)]


@pytest.mark.parametrize("fsync", list(FsyncPolicy))
def test_learned_entries_are_kept_whole_and_fsynced_under_every_policy(
    open_store: Opener, fsync: FsyncPolicy
) -> None:
    """Issue 11 C8: a master behind its secondaries appends what it learned from them, durably."""
    synced: list[int] = []
    store = open_store(new_log_id="L1", fsync=fsync, sync_fd=synced.append)
    store.append(["a"])
    learned = [Entry(2, "b", 7.0, 1, Kind.MESSAGE, "key-b"), Entry(3, "c", 8.0, 2)]
    before = len(synced)
    assert store.learn(learned) == 3
    assert len(synced) > before, "fsynced before learn returns"
    with pytest.raises(ValueError, match="start at seq 2, not 4"):
        store.learn(learned[:1])
    store.close()
    again = open_store()
    assert again.read(2, 2) == learned


def test_apply_acks_only_after_fsync(open_store: Opener) -> None:
    release = threading.Event()
    synced: list[int] = []

    def slow_sync(fd: int) -> None:
        assert release.wait(WAIT_S)
        synced.append(fd)

    store = open_store(sync_fd=slow_sync)
    acked: list[int] = []
    applier = threading.Thread(target=lambda: acked.append(store.apply("L1", entries(1, 3))))
    applier.start()
    written = len(records.encode_batch(entries(1, 3))[0])
    wait_for(lambda: log_path(store).stat().st_size == written)
    assert store.read(1, 10) == []
    assert acked == [] and store.stored_seq == 0
    release.set()
    applier.join(WAIT_S)
    assert acked == [3] and len(synced) == 1


class HeldSync:
    """An fsync that blocks until released, recording the file's size when it was called."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sizes: list[int] = []

    def __call__(self, fd: int) -> None:
        self.sizes.append(os.fstat(fd).st_size)
        assert self.release.wait(WAIT_S)


def test_always_leaves_the_write_to_the_flusher_one_write_per_group(open_store: Opener) -> None:
    sync = HeldSync()
    store = open_store(new_log_id="L1", sync_fd=sync)
    store.append(["a"])
    size_a = len(records.encode_batch([Entry(1, "a")])[0])
    wait_for(lambda: sync.sizes == [size_a])  # written just before its fsync, which is now held
    store.append(["b"])
    store.append(["c"])
    assert log_path(store).stat().st_size == size_a, "an append alone writes nothing"
    sync.release.set()
    wait_for(lambda: store.stored_seq == 3)
    assert len(sync.sizes) == 2, "b and c went out in one write and one fsync"
    assert sync.sizes[1] == log_path(store).stat().st_size > size_a
    assert messages(store) == ["a", "b", "c"]


def test_entries_not_yet_written_stay_in_the_cache_however_small(open_store: Opener) -> None:
    sync = HeldSync()
    store = open_store(new_log_id="L1", sync_fd=sync, cache_bytes=400)
    store.append(["m0"])
    wait_for(lambda: len(sync.sizes) == 1)
    for i in range(1, 20):
        store.append([f"m{i}"])
    prefix = store._prefix
    assert [e.message for e in prefix.read(1, 100, 1 << 30)] == [f"m{i}" for i in range(20)]
    sync.release.set()
    wait_for(lambda: store.stored_seq == 20)
    assert messages(store) == [f"m{i}" for i in range(20)]
    store.close()
    reopened = DiskStore.open(store.data_dir, cache_bytes=400)
    try:
        assert messages(reopened) == [f"m{i}" for i in range(20)]
    finally:
        reopened.close()


# --- master: group commit, policies, listener --------------------------------------------------------


def test_group_commit_many_threads_few_fsyncs(open_store: Opener) -> None:
    fsyncs: list[int] = []

    def slow_disk(fd: int) -> None:
        os.fsync(fd)
        time.sleep(0.002)  # a slow device, not a wait: makes the batching visible and deterministic
        fsyncs.append(fd)

    store = open_store(new_log_id="L1", sync_fd=slow_disk)
    stored = threading.Condition()
    calls: list[tuple[int, int]] = []

    def listener(seq: int) -> None:
        with stored:
            calls.append((seq, threading.get_ident()))
            stored.notify_all()

    store.set_listener(listener)
    seqs: list[int] = []

    def is_stored(seq: int) -> bool:
        return store.stored_seq >= seq

    def client(n: int) -> None:
        for i in range(40):
            seq = store.append([f"client {n} message {i}"])[0].seq
            seqs.append(seq)
            with stored:  # like a w=1 client: wait until its own entry is durable
                assert stored.wait_for(partial(is_stored, seq), WAIT_S)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S * 4)
    assert sorted(seqs) == list(range(1, 641))
    assert len(fsyncs) <= 640 / 4, f"{len(fsyncs)} fsyncs for 640 appends"
    assert [seq for seq, _ in calls] == sorted({seq for seq, _ in calls}), "listener seqs increase"
    assert len({thread for _, thread in calls}) == 1 and calls[-1][0] == 640
    assert len(messages(store)) == 640


def test_always_reports_stored_only_after_fsync_and_reads_do_not_wait(open_store: Opener) -> None:
    release = threading.Event()
    store = open_store(new_log_id="L1", sync_fd=lambda fd: release.wait(WAIT_S) and None)
    assert [e.seq for e in store.append(["a", "b"])] == [1, 2]
    assert store.stored_seq == 0
    assert store.read(1, 10) == [], "a read returns at once, and never shows an unsynced entry"
    release.set()
    wait_for(lambda: store.stored_seq == 2)
    assert messages(store) == ["a", "b"]


@pytest.mark.parametrize("policy", [FsyncPolicy.INTERVAL, FsyncPolicy.NEVER])
def test_interval_and_never_store_on_write(open_store: Opener, policy: FsyncPolicy) -> None:
    fsyncs: list[int] = []
    store = open_store(new_log_id="L1", fsync=policy, fsync_interval_s=0.001, sync_fd=fsyncs.append)
    heard: list[int] = []
    store.set_listener(heard.append)
    store.append(["a"])
    assert store.stored_seq == 1
    wait_for(lambda: heard == [1])
    if policy is FsyncPolicy.INTERVAL:
        wait_for(lambda: len(fsyncs) == 1)
    store.close()
    assert len(fsyncs) == 1, "interval syncs once here; never syncs only on close"


def test_closed_store_refuses_appends_and_close_is_idempotent(open_store: Opener) -> None:
    store = open_store(new_log_id="L1")
    store.append(["a"])
    store.close()
    store.close()
    assert store.stored_seq == 1
    with pytest.raises(ShuttingDown, match="closed"):
        store.append(["b"])
    with pytest.raises(ShuttingDown):
        store.apply("L1", entries(2, 2))


# --- reads ---------------------------------------------------------------------------------------------


def test_read_pages_across_cache_and_disk(open_store: Opener) -> None:
    store = open_store(new_log_id="L1", cache_bytes=2000)
    for start in range(0, 100, 9):
        store.append([f"msg {i}" for i in range(start, min(start + 9, 100))])
    wait_for(lambda: store.stored_seq == 100)
    expected = [f"msg {i}" for i in range(100)]
    pages = [store.read(first, 7) for first in range(1, 101, 7)]
    assert [e.message for page in pages for e in page] == expected
    assert [e.seq for e in store.read(85, 30)] == list(range(85, 101))
    assert store.read(101, 10) == [] and store.read(0, 10) == [] and store.read(5, 0) == []
    assert [e.seq for e in store.read(3, 50, max_bytes=80)] == [3, 4]
    assert [e.seq for e in store.read(3, 50, max_bytes=1)] == [3]
    store.close()
    again = open_store(cache_bytes=2000)
    assert messages(again) == expected
    assert [e.seq for e in again.read(88, 5)] == [88, 89, 90, 91, 92]


# --- the contract shared with MemoryStore --------------------------------------------------------------


def test_contract_master_append_and_read(make_store: MakeStore) -> None:
    store = make_store("L1")
    heard: list[int] = []
    store.set_listener(heard.append)
    assert store.log_id == "L1"
    assert store.append(["a", "b"]) == [Entry(1, "a", 42.0), Entry(2, "b", 42.0)]
    assert [e.seq for e in store.append(["c"])] == [3]
    wait_for(lambda: store.stored_seq == 3 and heard[-1] == 3)
    assert store.read(1, 10) == [Entry(1, "a", 42.0), Entry(2, "b", 42.0), Entry(3, "c", 42.0)]
    assert [e.message for e in store.read(2, 1)] == ["b"]
    assert store.read(4, 10) == []


def test_contract_secondary_apply(make_store: MakeStore) -> None:
    store = make_store(None)
    assert store.log_id is None
    with pytest.raises(LogMismatch):
        store.apply("L1", entries(2, 3))
    assert store.log_id is None, "a refused batch names nothing"
    assert store.read(1, 10) == []
    assert store.apply("L1", entries(1, 1)) == 1
    assert store.apply("L1", entries(1, 3)) == 3
    assert store.log_id == "L1"
    with pytest.raises(LogIdMismatch):
        store.apply("L2", entries(4, 4))
    with pytest.raises(LogMismatch):
        store.apply("L1", [Entry(3, "different")])
    head = BatchHead(1, 3, 1, crc_of("m3"))
    assert store.apply("L1", entries(4, 4), head) == 4
    with pytest.raises(LogMismatch) as caught:
        store.apply("L1", entries(5, 5), BatchHead(1, 4, 1, crc_of("other")))
    assert caught.value.extra["reason"] == "content"
    assert [e.message for e in store.read(1, 10)] == ["m1", "m2", "m3", "m4"]
    assert all(e.stored_at == 42.0 for e in store.read(1, 10))


def test_concurrent_reads_see_only_a_growing_stored_prefix(open_store: Opener) -> None:
    store = open_store(new_log_id="L1", fsync=FsyncPolicy.NEVER, cache_bytes=10_000)
    done = threading.Event()
    problems: list[str] = []

    def reader() -> None:
        while not done.is_set():
            top = store.stored_seq
            first = max(1, top - 120)
            page = store.read(first, 200)
            if [e.seq for e in page] != list(range(first, first + len(page))) or len(page) < top - first + 1:
                problems.append(f"read({first}) at stored {top} gave {[e.seq for e in page][:3]}...")
            time.sleep(0)  # not a wait: yields the GIL, or two spinning readers starve the writer for seconds

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    for i in range(300):
        store.append([f"m{i}", f"n{i}"])
    done.set()
    for t in readers:
        t.join(WAIT_S)
    assert problems == []
    assert [e.message for e in store.read(599, 5)] == ["m299", "n299"]


@settings(max_examples=15, deadline=None)
@given(
    batches=st.lists(st.lists(st.integers(1, 12), max_size=6), max_size=10),
    restart_after=st.integers(0, 10),
)
def test_any_delivery_order_survives_a_restart_as_the_same_prefix(
    batches: list[list[int]], restart_after: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = DiskStore.open(Path(tmp), fsync=FsyncPolicy.NEVER)
        try:
            for i, seqs in enumerate(batches):
                if i == restart_after:
                    store.close()
                    store = DiskStore.open(Path(tmp), fsync=FsyncPolicy.NEVER)
                batch = [Entry(s, f"m{s}") for s in range(min(seqs, default=1), max(seqs, default=0) + 1)]
                try:
                    acked = store.apply("L1", batch)
                except LogMismatch:  # past a gap: refused, nothing held
                    acked = store.stored_seq
                assert messages(store) == [f"m{s}" for s in range(1, acked + 1)]
            held = {s for seqs in batches for s in range(min(seqs, default=1), max(seqs, default=0) + 1)}
            assert store.stored_seq <= len(held)
        finally:
            store.close()
        again = DiskStore.open(Path(tmp))
        try:
            assert messages(again) == [f"m{s}" for s in range(1, store.stored_seq + 1)]
        finally:
            again.close()

"""The stream broadcaster: pushes each stream the page it lacks, once, in order; skips a slow reader
until it drains; ends every stream at close. A fake channel stands in for waitress's."""

from __future__ import annotations

import re
import threading
from typing import Any

from replog.core.matching import BatchHead, crc_of
from replog.core.wire import Entry
from replog.storage.store import MemoryStore
from replog.storage.watch import SeqWatch
from replog.web.broadcast import MAX_UNSENT_BYTES, Stream
from replog.web.follow import Followers
from tests.conftest import wait_for


class FakeChannel:
    """What `send_chunk` uses of a waitress channel; records the chunks' payloads."""

    def __init__(self) -> None:
        self.connected = True
        self.outbuf_lock = threading.Condition()
        self.total_outbufs_len = 0
        self.backlog = 0  # unsent bytes the test pretends the client has not read
        self.sent: list[bytes] = []

    def write_soon(self, data: bytes) -> int:
        self.sent.append(data.split(b"\r\n", 1)[1][:-2])  # the chunk's payload
        return len(data)

    def _flush_exception(self, flush: Any, do_close: bool = True) -> tuple[bool, bool]:
        return True, False

    def _flush_some(self, do_close: bool = True) -> bool:
        return True

    def seqs(self) -> list[int]:
        return [int(m) for m in re.findall(rb"id: (\d+)\n", b"".join(self.sent))]


def test_each_stream_gets_every_entry_once_and_a_slow_reader_waits_its_turn() -> None:
    store = MemoryStore("log")
    watch = SeqWatch(lambda: store.stored_seq)
    store.set_listener(watch.poke)
    followers = Followers(store, watch, max_followers=4, keepalive_s=30.0)
    fast, slow = FakeChannel(), FakeChannel()
    slow.total_outbufs_len = MAX_UNSENT_BYTES + 1
    try:
        followers.broadcaster.add(Stream(fast, 1))
        followers.broadcaster.add(Stream(slow, 2))
        store.append(["a", "b"])
        wait_for(lambda: fast.seqs() == [1, 2])
        store.append(["c"])
        wait_for(lambda: fast.seqs() == [1, 2, 3])
        assert slow.seqs() == []  # skipped while its client has not read
        slow.total_outbufs_len = 0
        wait_for(lambda: slow.seqs() == [2, 3])
        assert fast.seqs() == [1, 2, 3]
    finally:
        followers.close()


def test_a_gone_client_ends_its_stream_and_close_ends_the_rest() -> None:
    store = MemoryStore("log")
    watch = SeqWatch(lambda: store.stored_seq)
    store.set_listener(watch.poke)
    followers = Followers(store, watch, max_followers=4, keepalive_s=30.0)
    gone, kept = FakeChannel(), FakeChannel()
    gone.connected = False
    gone_stream, kept_stream = Stream(gone, 1), Stream(kept, 1)
    followers.broadcaster.add(gone_stream)
    followers.broadcaster.add(kept_stream)
    store.append(["a"])
    wait_for(gone_stream.ended.is_set)
    wait_for(lambda: kept.seqs() == [1])
    followers.close()
    assert kept_stream.ended.is_set()


def test_a_rollback_never_leaves_a_rolled_back_entry_in_the_page_cache() -> None:
    """Cluster mode: a secondary that rolls its suffix back (`Store.apply(rollback=True)`) gives a
    seq another entry; the page cache is keyed by the rollback count, so readers get the new one."""
    store = MemoryStore("L1", clock=lambda: 1.0)
    store.apply("L1", [Entry(1, "a"), Entry(2, "ghost")])
    followers = Followers(store, SeqWatch(lambda: store.stored_seq), max_followers=4, keepalive_s=30.0)
    page = followers.events_from(2)
    assert page is not None and b"ghost" in page[0]
    store.apply("L1", [Entry(2, "new", epoch=2)], BatchHead(2, 1, 1, crc_of("a")), rollback=True)
    assert store.rolled_back_entries == 1
    page = followers.events_from(2)
    assert page is not None and b"new" in page[0] and b"ghost" not in page[0]

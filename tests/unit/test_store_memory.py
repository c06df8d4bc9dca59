"""Memory is bounded in bytes, not entries (issue 11 B4): big messages never pile up in a store.

Counted with `entry_bytes` (what each held entry costs, its Python overhead included), not RSS.
"""

from __future__ import annotations

import threading

import pytest

from replog.core.entry import entry_bytes
from replog.core.errors import LogMismatch
from replog.core.wire import Entry
from tests.unit.stores import Opener, messages, wait_for

BIG = "x" * 100_000
BOUND = 1_000_000


def test_the_cache_of_recent_entries_stays_under_its_bound(open_store: Opener) -> None:
    store = open_store(new_log_id="L1", cache_bytes=BOUND)
    for i in range(50):  # 5 MB of messages through a 1 MB cache (what is not written yet stays)
        store.append([f"{i:02}" + BIG])
    wait_for(lambda: store.stored_seq == 50)
    store.append(["last"])  # trims once the earlier ones are in the file
    wait_for(lambda: store.stored_seq == 51)
    assert 0 < store._prefix.cached_bytes <= BOUND
    assert [m[:2] for m in messages(store)[:50]] == [f"{i:02}" for i in range(50)], (
        "the rest is read from the file"
    )
    store.close()
    again = open_store(cache_bytes=BOUND)
    assert 0 < again._prefix.cached_bytes <= BOUND, "recovery loads only what fits"
    assert len(messages(again)) == 51


def test_entries_not_yet_written_are_never_evicted(open_store: Opener) -> None:
    release = threading.Event()
    store = open_store(new_log_id="L1", cache_bytes=BOUND, sync_fd=lambda fd: release.wait(5) and None)
    store.append(["first"])
    wait_for(lambda: store._prefix._written == 1)  # written, its fsync held: the next ones stay buffered
    for _ in range(20):
        store.append([BIG])
    assert store._prefix.cached_bytes >= 20 * entry_bytes(Entry(2, BIG)) > BOUND
    assert len(store._prefix.read(2, 100, 1 << 40)) == 20
    release.set()
    wait_for(lambda: store.stored_seq == 21)
    store.append(["more"])
    wait_for(lambda: store.stored_seq == 22)
    assert store._prefix.cached_bytes <= BOUND


def test_a_secondary_holds_nothing_past_a_gap(open_store: Opener) -> None:
    store = open_store(cache_bytes=BOUND)
    with pytest.raises(LogMismatch, match="past this log"):
        store.apply("L1", [Entry(s, BIG) for s in range(2, 60)])
    assert store.cached_bytes == 0, "refused, not buffered"
    assert store.apply("L1", [Entry(1, BIG)]) == 1
    assert store.cached_bytes <= BOUND

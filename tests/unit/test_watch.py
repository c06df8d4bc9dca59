"""SeqWatch: waiters wake when the stored seq reaches theirs, wake-ups are coalesced, close ends all."""

from __future__ import annotations

import threading

from replog.storage.watch import SeqWatch
from tests.conftest import wait_for


class Counter:
    def __init__(self) -> None:
        self.seq = 0


def start_waiter(watch: object, seq: int, timeout_s: float, results: list[bool]) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.append(watch.wait_for(seq, timeout_s)))  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_a_waiter_wakes_when_its_seq_is_stored() -> None:
    stored = Counter()
    watch = SeqWatch(lambda: stored.seq)
    results: list[bool] = []
    thread = start_waiter(watch, 2, 30.0, results)
    wait_for(lambda: watch.waiting == 1)
    stored.seq = 1
    watch.poke()
    stored.seq = 2
    watch.poke()
    thread.join(10)
    assert results == [True]
    assert watch.wait_for(2, 0.0) is True  # held already: no wait
    assert watch.wait_for(3, 0.01) is False  # timeout
    watch.close()


def test_pokes_with_nobody_waiting_wake_nobody() -> None:
    watch = SeqWatch(lambda: 0)
    for _ in range(1000):
        watch.poke()
    assert watch.wakeups == 0
    watch.close()


def test_a_burst_of_pokes_costs_few_wakeups() -> None:
    stored = Counter()
    watch = SeqWatch(lambda: stored.seq, coalesce_s=0.05)
    results: list[bool] = []
    threads = [start_waiter(watch, 10_000, 30.0, results) for _ in range(20)]
    wait_for(lambda: watch.waiting == 20)
    for _ in range(9_999):
        stored.seq += 1
        watch.poke()
    stored.seq += 1
    watch.poke()
    for thread in threads:
        thread.join(10)
    assert results == [True] * 20
    assert watch.wakeups < 1000  # coalesced: far fewer than one per poke
    watch.close()


def test_close_wakes_every_waiter() -> None:
    watch = SeqWatch(lambda: 0)
    results: list[bool] = []
    threads = [start_waiter(watch, 5, 30.0, results) for _ in range(3)]
    wait_for(lambda: watch.waiting == 3)
    watch.close()
    for thread in threads:
        thread.join(10)
    assert results == [False] * 3 and watch.closed

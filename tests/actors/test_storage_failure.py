"""A full disk never lies, at the actors (issue 11 C6).

The gate fails at once, with an honest 503, every writer whose entry the master's store dropped
(never a 504 "stored", never a 201 when the seq is reused), however its `Register` and the
`StoreFailed` interleave; the heartbeat stops counting a secondary whose disk fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pykka
import pytest

from replog.actors.gate import Acked, MasterStored, Register, StoreFailed
from replog.core.errors import StorageUnavailable
from replog.net.transport import ProbeResult

from .test_gate import WAIT_S, CountingFuture, gate, is_done, sync, view
from .test_heartbeat import POLICY, Harness, start_monitor

__all__ = ["gate", "start_monitor", "view"]  # fixtures used here

WaitFor = Callable[..., Any]


def register(gate: pykka.ActorRef[Any], seq: int, w: int, generation: int) -> CountingFuture:
    future = CountingFuture()
    gate.tell(Register(seq, w, future, generation))
    return future


def test_writers_whose_entries_were_dropped_are_failed_at_once(gate: pykka.ActorRef[Any]) -> None:
    gate.tell(MasterStored(2))
    durable, dropped, other_w = register(gate, 2, 3, 0), register(gate, 3, 1, 0), register(gate, 4, 2, 0)
    assert sync(gate)["waiting_writers"] == 3
    gate.tell(StoreFailed(generation=1, durable_seq=2, reason="No space left on device"))
    for future in (dropped, other_w):
        with pytest.raises(
            StorageUnavailable, match=r"disk failed before seq \d was durable.*nothing was stored"
        ):
            future.get(timeout=WAIT_S)
    assert sync(gate)["waiting_writers"] == 1
    assert not is_done(durable), "an entry the store kept keeps waiting for its w"
    gate.tell(Acked("a", 2))
    gate.tell(Acked("b", 2))
    assert durable.get(timeout=WAIT_S) == 3
    gate.tell(MasterStored(4))  # seqs 3 and 4 now hold other entries: nobody above is told they are stored
    sync(gate)
    assert (dropped.completions, other_w.completions) == (1, 1)


def test_a_writer_registering_after_the_failure_was_heard_is_failed_too(gate: pykka.ActorRef[Any]) -> None:
    gate.tell(StoreFailed(generation=1, durable_seq=5, reason="No space left on device"))
    late = register(gate, 6, 1, 0)  # appended in generation 0, its Register overtaken by the failure
    with pytest.raises(StorageUnavailable):
        late.get(timeout=WAIT_S)
    kept = register(gate, 5, 1, 0)  # seq 5 was durable
    fresh = register(gate, 6, 1, 1)  # appended after the failure: seq 6 again, another entry
    sync(gate)
    assert not is_done(kept) and not is_done(fresh)
    gate.tell(MasterStored(6))
    assert (kept.get(timeout=WAIT_S), fresh.get(timeout=WAIT_S)) == (1, 1)
    assert late.completions == 1


def test_later_generations_are_untouched_by_an_older_failure(gate: pykka.ActorRef[Any]) -> None:
    gate.tell(StoreFailed(generation=1, durable_seq=0, reason="full"))
    waiter = register(gate, 1, 1, 1)
    gate.tell(StoreFailed(generation=1, durable_seq=0, reason="full"))  # heard twice: still generation 1
    sync(gate)
    assert not is_done(waiter)
    gate.tell(StoreFailed(generation=2, durable_seq=0, reason="full again"))
    with pytest.raises(StorageUnavailable):
        waiter.get(timeout=WAIT_S)


def test_a_secondary_whose_disk_fails_stops_counting(
    start_monitor: Callable[..., Harness], wait_for: WaitFor
) -> None:
    h = start_monitor("a")
    h.tick_until("a", "Healthy")
    failing = ProbeResult(0, None, storage_ok=False, storage_reason="No space left on device")
    h.transports["a"].probe = lambda: failing  # type: ignore[method-assign]
    h.tick_until("a", "Suspected")
    assert h.describe()["a"]["probe_error"] == "storage_unavailable: No space left on device"
    h.clock.advance(POLICY.unhealthy_after_s)
    h.tick_until("a", "Unhealthy")  # no longer counted toward quorum
    del h.transports["a"].probe  # back to the fake's own probe: its disk works again
    h.tick_until("a", "Healthy")

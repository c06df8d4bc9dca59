"""The quorum gate: waiters completed exactly once, the read-only flag, shutdown."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pykka
import pytest

from replog.actors.gate import (
    Acked,
    AcksFor,
    Cancel,
    HealthChanged,
    LinkVerdict,
    MasterStored,
    QuorumGate,
    QuorumView,
    Register,
    Snapshot,
)
from replog.core.errors import ShuttingDown
from replog.core.health import Status

WAIT_S = 5.0


class CountingFuture(pykka.ThreadingFuture[int]):
    """A future that remembers how often the gate tried to complete it."""

    def __init__(self) -> None:
        super().__init__()
        self.completions = 0

    def set(self, value: Any = None) -> None:
        self.completions += 1
        super().set(value)

    def set_exception(self, exc_info: Any = None) -> None:
        self.completions += 1
        super().set_exception(exc_info)


def is_done(future: pykka.Future[int]) -> bool:
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    except Exception:
        return True
    return True


@pytest.fixture
def view() -> QuorumView:
    return QuorumView()


@pytest.fixture
def gate(view: QuorumView) -> Iterator[pykka.ActorRef[Any]]:
    ref = QuorumGate.start("m", ["a", "b"], view)
    yield ref
    ref.stop()


def sync(gate: pykka.ActorRef[Any]) -> dict[str, Any]:
    """A round trip through the mailbox: every earlier tell from this thread is handled."""
    return cast(dict[str, Any], gate.ask(Snapshot(), timeout=WAIT_S))


def register(gate: pykka.ActorRef[Any], seq: int, w: int) -> CountingFuture:
    future = CountingFuture()
    gate.tell(Register(seq, w, future))
    return future


def test_w1_completes_when_the_master_stored(gate: pykka.ActorRef[Any]) -> None:
    future = register(gate, 1, 1)
    sync(gate)
    assert not is_done(future)
    gate.tell(MasterStored(1))
    assert future.get(timeout=WAIT_S) == 1


def test_w1_registered_after_store_completes_at_once(gate: pykka.ActorRef[Any]) -> None:
    gate.tell(MasterStored(3))
    assert register(gate, 2, 1).get(timeout=WAIT_S) == 1


def test_w3_completes_exactly_once_with_the_ack_count(gate: pykka.ActorRef[Any]) -> None:
    gate.tell(MasterStored(1))
    future = register(gate, 1, 3)
    gate.tell(Acked("a", 1))
    sync(gate)
    assert not is_done(future)
    gate.tell(Acked("b", 1))
    assert future.get(timeout=WAIT_S) == 3
    for message in [Acked("a", 2), Acked("b", 2), MasterStored(2), Acked("a", 0), Acked("a", 2)]:
        gate.tell(message)
    snapshot = sync(gate)
    assert future.completions == 1
    assert snapshot["waiting_writers"] == 0


def test_w2_reports_every_node_that_holds_the_seq(gate: pykka.ActorRef[Any]) -> None:
    gate.tell(Acked("a", 5))
    gate.tell(Acked("b", 5))
    future = register(gate, 5, 2)
    sync(gate)
    assert not is_done(future)  # the master has not stored 5 yet
    gate.tell(MasterStored(5))
    assert future.get(timeout=WAIT_S) == 3


def test_ack_only_satisfies_waiters_it_covers(gate: pykka.ActorRef[Any]) -> None:
    gate.tell(MasterStored(3))
    early, late = register(gate, 1, 2), register(gate, 3, 2)
    gate.tell(Acked("a", 2))
    assert early.get(timeout=WAIT_S) == 2
    sync(gate)
    assert not is_done(late)
    gate.tell(Acked("b", 3))
    assert late.get(timeout=WAIT_S) == 2


def test_acks_for(gate: pykka.ActorRef[Any]) -> None:
    gate.tell(MasterStored(4))
    gate.tell(Acked("a", 4))
    gate.tell(Acked("b", 2))
    assert gate.ask(AcksFor(3), timeout=WAIT_S) == 2
    assert gate.ask(AcksFor(2), timeout=WAIT_S) == 3


def test_cancelled_waiter_is_never_completed(gate: pykka.ActorRef[Any]) -> None:
    gate.tell(MasterStored(1))
    future = register(gate, 1, 3)
    assert sync(gate)["waiting_writers"] == 1
    gate.tell(Cancel(future))
    assert sync(gate)["waiting_writers"] == 0
    gate.tell(Acked("a", 1))
    gate.tell(Acked("b", 1))
    sync(gate)
    assert future.completions == 0


def verified(gate: pykka.ActorRef[Any], *names: str) -> None:
    for name in names:
        gate.tell(LinkVerdict(name, True, None))


def test_read_only_follows_health_and_is_published(gate: pykka.ActorRef[Any], view: QuorumView) -> None:
    assert view.read_only  # every secondary starts Unhealthy: 1 of 3 nodes
    assert sync(gate)["read_only"] is True
    verified(gate, "a", "b")
    gate.tell(HealthChanged("a", Status.HEALTHY))
    snapshot = sync(gate)
    assert snapshot["read_only"] is False
    assert snapshot["quorum"] == {"nodes": 3, "available": 2, "needed": 2}
    assert not view.read_only
    gate.tell(HealthChanged("a", Status.SUSPECTED))  # Suspected still counts
    sync(gate)
    assert not view.read_only
    gate.tell(HealthChanged("a", Status.UNHEALTHY))
    assert sync(gate)["read_only"] is True
    assert view.read_only
    gate.tell(HealthChanged("b", Status.HEALTHY))
    sync(gate)
    assert not view.read_only


def test_four_nodes_need_three(view: QuorumView) -> None:
    gate = QuorumGate.start("m", ["a", "b", "c"], view)
    verified(gate, "a", "b", "c")
    gate.tell(HealthChanged("a", Status.HEALTHY))
    assert sync(gate)["read_only"] is True
    gate.tell(HealthChanged("c", Status.SUSPECTED))
    assert sync(gate)["read_only"] is False
    assert not view.read_only


def test_only_verified_links_count_toward_quorum(gate: pykka.ActorRef[Any], view: QuorumView) -> None:
    """Issue 11 C7: a healthy secondary counts only once its link verified its log (a handshake)."""
    gate.tell(HealthChanged("a", Status.HEALTHY))
    gate.tell(HealthChanged("b", Status.HEALTHY))
    snapshot = sync(gate)
    assert snapshot["read_only"] is True
    assert snapshot["read_only_reason"] == "no quorum: 1 of 3 nodes available and verified, 2 needed"
    verified(gate, "a")
    assert sync(gate)["read_only"] is False
    gate.tell(LinkVerdict("a", False, None))  # a conflict
    assert sync(gate)["read_only"] is True and view.read_only


def test_a_master_behind_a_secondary_is_read_only_until_it_caught_up(
    gate: pykka.ActorRef[Any], view: QuorumView
) -> None:
    """Issue 11 C8."""
    verified(gate, "a", "b")
    gate.tell(HealthChanged("a", Status.HEALTHY))
    gate.tell(HealthChanged("b", Status.HEALTHY))
    gate.tell(MasterStored(4))
    gate.tell(LinkVerdict("b", True, 9))
    snapshot = sync(gate)
    assert snapshot["read_only"] is True
    assert snapshot["read_only_reason"] == "behind: b holds seq 9, this node 4"
    assert view.read_only
    gate.tell(MasterStored(9))
    gate.tell(LinkVerdict("b", True, None))
    assert sync(gate)["read_only_reason"] is None
    assert not view.read_only


def test_unknown_and_bad_messages_do_not_kill_the_gate(gate: pykka.ActorRef[Any]) -> None:
    gate.tell("nonsense")
    gate.tell(Acked("no-such-secondary", 1))
    gate.tell(MasterStored(1))
    assert register(gate, 1, 1).get(timeout=WAIT_S) == 1


def test_stop_fails_every_waiter_with_shutting_down(gate: pykka.ActorRef[Any]) -> None:
    futures = [register(gate, 1, 3), register(gate, 2, 2)]
    sync(gate)
    gate.stop(timeout=WAIT_S)
    for future in futures:
        with pytest.raises(ShuttingDown):
            future.get(timeout=WAIT_S)
        assert future.completions == 1

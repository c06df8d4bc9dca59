"""Write-concern accounting: commit points per w, acks that go down, waiters popped exactly."""

from __future__ import annotations

from replog.core.writeconcern import Waiters, WriteConcernTracker


def tracker(master_seq: int, **acked: int) -> WriteConcernTracker:
    t = WriteConcernTracker(sorted(acked))
    t.master_stored(master_seq)
    for name, seq in acked.items():
        t.ack(name, seq)
    return t


def test_commit_point_for_each_w() -> None:
    t = tracker(10, a=7, b=4, c=9)
    assert t.node_count == 4
    assert t.commit_point(1) == 10
    assert t.commit_point(2) == 9  # master + the best secondary
    assert t.commit_point(3) == 7
    assert t.commit_point(4) == 4
    assert t.commit_point(5) == 0  # more nodes than exist: never


def test_commit_point_is_capped_by_the_master() -> None:
    t = tracker(3, a=5, b=5)  # a secondary cannot hold more than the master stored
    assert t.commit_point(2) == 3
    assert t.commit_point(3) == 3


def test_acks_for_counts_master_and_secondaries() -> None:
    t = tracker(5, a=5, b=2)
    assert t.acks_for(2) == 3
    assert t.acks_for(3) == 2
    assert t.acks_for(6) == 0


def test_master_stored_only_moves_up() -> None:
    t = WriteConcernTracker(["a"])
    assert t.master_stored(3) is True
    assert t.master_stored(2) is False
    assert t.master_stored(3) is False
    assert t.master_seq == 3


def test_ack_can_go_down_when_a_secondary_lost_its_log() -> None:
    t = tracker(5, a=5, b=5)
    assert t.ack("a", 5) is False  # unchanged
    assert t.ack("a", 0) is True
    assert t.acked["a"] == 0
    assert t.commit_point(3) == 0
    assert t.commit_point(2) == 5


def test_waiters_pop_exactly_the_satisfied_ones() -> None:
    t = tracker(0, a=0, b=0)
    waiters: Waiters[str] = Waiters()
    waiters.add(1, 1, "s1w1")
    waiters.add(1, 2, "s1w2")
    waiters.add(2, 2, "s2w2")
    waiters.add(1, 3, "s1w3")
    assert len(waiters) == 4
    assert waiters.satisfied(t) == []

    t.master_stored(2)
    assert waiters.satisfied(t) == [(1, "s1w1")]
    t.ack("a", 1)
    assert waiters.satisfied(t) == [(1, "s1w2")]
    assert waiters.satisfied(t) == []  # popped once only
    t.ack("b", 2)
    assert sorted(waiters.satisfied(t)) == [(1, "s1w3"), (2, "s2w2")]
    assert len(waiters) == 0


def test_waiters_with_the_same_seq_come_out_in_arrival_order() -> None:
    t = tracker(1, a=1)
    waiters: Waiters[str] = Waiters()
    for name in ["x", "y", "z"]:
        waiters.add(1, 2, name)
    assert waiters.satisfied(t) == [(1, "x"), (1, "y"), (1, "z")]


def test_cancelled_waiter_is_never_satisfied() -> None:
    t = tracker(0, a=0)
    waiters: Waiters[str] = Waiters()
    waiters.add(1, 2, "gone")
    waiters.add(1, 2, "stays")
    waiters.cancel("gone")
    assert len(waiters) == 1
    t.master_stored(1)
    t.ack("a", 1)
    assert waiters.satisfied(t) == [(1, "stays")]
    assert len(waiters) == 0


def test_drain_returns_live_waiters_and_empties() -> None:
    waiters: Waiters[str] = Waiters()
    waiters.add(1, 2, "a")
    waiters.add(2, 3, "b")
    waiters.add(3, 3, "c")
    waiters.cancel("b")
    assert sorted(waiters.drain()) == ["a", "c"]
    assert len(waiters) == 0
    assert waiters.drain() == []

"""Secondary health: Healthy -> Suspected -> Unhealthy with a fake `now`, and back only by a probe."""

from __future__ import annotations

import pytest

from replog.core.health import HealthPolicy, NodeHealth, Status, probe_failed, probe_ok, tick

POLICY = HealthPolicy(suspect_after_s=2.0, unhealthy_after_s=5.0)


def test_status_spellings_are_the_contract() -> None:
    assert [s.value for s in Status] == ["Healthy", "Suspected", "Unhealthy"]


def test_starts_unhealthy_and_unseen() -> None:
    state = NodeHealth.start(now=100.0)
    assert state.status is Status.UNHEALTHY
    assert state.seconds_since_seen(150.0) is None
    assert tick(state, 100.5, POLICY).status is Status.UNHEALTHY


def test_ok_probe_makes_healthy() -> None:
    state = probe_ok(NodeHealth.start(0.0), now=1.0)
    assert state.status is Status.HEALTHY
    assert state.last_seen == 1.0
    assert state.seconds_since_seen(3.5) == 2.5


def test_failed_probe_makes_a_healthy_node_suspected() -> None:
    state = probe_ok(NodeHealth.start(0.0), now=0.0)
    state = probe_failed(state, now=0.1, policy=POLICY)
    assert state.status is Status.SUSPECTED
    assert state.failures == 1


def test_failed_probe_does_not_improve_an_unhealthy_node() -> None:
    state = probe_failed(NodeHealth.start(0.0), now=0.1, policy=POLICY)
    assert state.status is Status.UNHEALTHY


def test_silence_degrades_healthy_to_suspected_to_unhealthy() -> None:
    state = probe_ok(NodeHealth.start(0.0), now=10.0)
    assert tick(state, 11.99, POLICY).status is Status.HEALTHY
    state = tick(state, 12.0, POLICY)
    assert state.status is Status.SUSPECTED
    assert tick(state, 14.99, POLICY).status is Status.SUSPECTED
    state = tick(state, 15.0, POLICY)
    assert state.status is Status.UNHEALTHY


def test_silence_can_jump_straight_to_unhealthy() -> None:
    state = probe_ok(NodeHealth.start(0.0), now=0.0)
    assert tick(state, 7.0, POLICY).status is Status.UNHEALTHY


@pytest.mark.parametrize("status", [Status.SUSPECTED, Status.UNHEALTHY])
def test_only_an_ok_probe_recovers(status: Status) -> None:
    state = NodeHealth(status, since=0.0, last_seen=0.0, failures=3)
    for now in [0.0, 0.1, 1.0, 100.0]:
        assert tick(state, now, POLICY).status is not Status.HEALTHY
        assert probe_failed(state, now, POLICY).status is not Status.HEALTHY
    recovered = probe_ok(state, now=100.0)
    assert recovered.status is Status.HEALTHY
    assert recovered.failures == 0


def test_transitions_never_mutate_their_input() -> None:
    state = probe_ok(NodeHealth.start(0.0), now=0.0)
    probe_failed(state, 1.0, POLICY)
    tick(state, 100.0, POLICY)
    assert state == NodeHealth(Status.HEALTHY, since=0.0, last_seen=0.0, failures=0)


def test_tick_returns_the_same_object_when_nothing_changes() -> None:
    state = probe_ok(NodeHealth.start(0.0), now=0.0)
    assert tick(state, 1.0, POLICY) is state


@pytest.mark.parametrize(("suspect", "unhealthy"), [(0.0, 1.0), (2.0, 1.0), (-1.0, 1.0)])
def test_policy_is_validated(suspect: float, unhealthy: float) -> None:
    with pytest.raises(ValueError):
        HealthPolicy(suspect, unhealthy)

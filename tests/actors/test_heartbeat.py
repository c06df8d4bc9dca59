"""The heartbeat monitor, driven by hand-sent ticks and a fake clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pykka
import pytest

from replog.actors.gate import HealthChanged
from replog.actors.heartbeat import Describe, HeartbeatMonitor, Tick
from replog.actors.link import NodeStatus, Probed
from replog.core.health import HealthPolicy, Status
from replog.core.wire import Entry

from .fakes import FakeClock, FakeTransport, Recorder, received

WaitFor = Callable[..., Any]  # the `wait_for` fixture
POLICY = HealthPolicy(suspect_after_s=1.0, unhealthy_after_s=2.0)
H, S, U = Status.HEALTHY, Status.SUSPECTED, Status.UNHEALTHY


@dataclass
class Harness:
    clock: FakeClock
    transports: dict[str, FakeTransport]
    links: dict[str, pykka.ActorRef[Any]]
    gate: pykka.ActorRef[Any]
    monitor: pykka.ActorRef[Any]

    def describe(self) -> dict[str, dict[str, Any]]:
        return cast(dict[str, dict[str, Any]], self.monitor.ask(Describe(), timeout=5.0))

    def status(self, url: str) -> str:
        return str(self.describe()[url]["status"])

    def gate_saw(self, url: str) -> list[Status]:
        return [m.status for m in received(self.gate, HealthChanged) if m.secondary == url]

    def link_saw(self, url: str) -> list[Status]:
        return [m.status for m in received(self.links[url], NodeStatus)]

    def tick_until(self, url: str, status: str, timeout_s: float = 5.0) -> None:
        """Send ticks (at the current fake time) until `url` shows `status`.

        Ticks are resent because one that arrives while a probe is in flight starts no new probe.
        """
        deadline = time.monotonic() + timeout_s
        while self.status(url) != status:
            assert time.monotonic() < deadline, f"{url} never became {status}: {self.describe()}"
            self.monitor.tell(Tick())
            time.sleep(0.005)


@pytest.fixture
def start_monitor() -> Callable[..., Harness]:
    def start(*urls: str) -> Harness:
        clock = FakeClock()
        transports = {url: FakeTransport() for url in urls}
        links = {url: Recorder.start() for url in urls}
        gate = Recorder.start()
        monitor = HeartbeatMonitor.start("m", transports, links, gate, POLICY, clock, log_id="L")
        return Harness(clock, transports, links, gate, monitor)

    return start


def test_starts_unhealthy_and_unseen(start_monitor: Callable[..., Harness]) -> None:
    h = start_monitor("a")
    assert h.describe() == {"a": {"status": "Unhealthy", "seconds_since_seen": None, "log_id": None,
                                  "probe_error": None}}


def test_ok_probe_makes_healthy_and_tells_link_and_gate(start_monitor: Callable[..., Harness],
                                                       wait_for: WaitFor) -> None:
    h = start_monitor("a")
    h.transports["a"].store.apply("L", [Entry(1, "x"), Entry(2, "y")])
    h.monitor.tell(Tick())
    wait_for(lambda: h.gate_saw("a") == [H])
    assert h.link_saw("a") == [H]
    wait_for(lambda: [m.acked_seq for m in received(h.links["a"], Probed)] == [2])  # the probe's acked seq
    assert h.describe()["a"] == {"status": "Healthy", "seconds_since_seen": 0.0, "log_id": "L",
                                 "probe_error": None}
    h.clock.advance(0.5)
    assert h.describe()["a"]["seconds_since_seen"] == 0.5


def test_failed_probe_suspects_then_silence_makes_unhealthy_and_ok_recovers(
        start_monitor: Callable[..., Harness], wait_for: WaitFor) -> None:
    h = start_monitor("a")
    h.tick_until("a", "Healthy")
    h.transports["a"].probe_error = "connection refused"
    h.tick_until("a", "Suspected")  # at the same instant: the failed probe, not silence, did it
    h.clock.advance(POLICY.unhealthy_after_s)
    h.monitor.tell(Tick())
    wait_for(lambda: h.status("a") == "Unhealthy")
    h.transports["a"].probe_error = None
    h.tick_until("a", "Healthy")
    wait_for(lambda: h.gate_saw("a") == [H, S, U, H])
    assert h.link_saw("a") == [H, S, U, H]


def test_a_secondary_holding_another_log_counts_as_failing(start_monitor: Callable[..., Harness],
                                                           wait_for: WaitFor) -> None:
    h = start_monitor("a")
    h.tick_until("a", "Healthy")  # empty: it has no log id yet
    h.transports["a"].store.apply("other", [Entry(1, "x")])
    h.tick_until("a", "Suspected")
    state = h.describe()["a"]
    assert state["log_id"] == "other"
    assert "log_id_mismatch" in state["probe_error"]
    assert [m.acked_seq for m in received(h.links["a"], Probed)].count(1) == 0  # never adopted


def test_probe_error_is_described(start_monitor: Callable[..., Harness]) -> None:
    h = start_monitor("a")
    h.tick_until("a", "Healthy")
    h.transports["a"].probe_error = "timed out"
    h.tick_until("a", "Suspected")
    assert h.describe()["a"]["probe_error"] == "timed out"
    h.transports["a"].probe_error = None
    h.tick_until("a", "Healthy")
    assert h.describe()["a"]["probe_error"] is None


def test_silence_degrades_step_by_step_and_only_an_answer_recovers(
        start_monitor: Callable[..., Harness], wait_for: WaitFor) -> None:
    h = start_monitor("a")
    h.tick_until("a", "Healthy")
    h.transports["a"].hold_probes()  # the node stops answering (paused)
    h.monitor.tell(Tick())
    wait_for(lambda: h.transports["a"].probes == 2)
    h.clock.advance(POLICY.suspect_after_s - 0.01)
    h.monitor.tell(Tick())
    assert h.status("a") == "Healthy"
    h.clock.advance(0.01)
    h.monitor.tell(Tick())
    assert h.status("a") == "Suspected"
    h.clock.advance(POLICY.unhealthy_after_s - POLICY.suspect_after_s)
    h.monitor.tell(Tick())
    assert h.status("a") == "Unhealthy"
    h.clock.advance(10.0)
    h.monitor.tell(Tick())
    assert h.status("a") == "Unhealthy"
    assert h.transports["a"].probes == 2  # no probe piles up behind the stuck one
    h.transports["a"].release_probes()  # the node answers again
    wait_for(lambda: h.status("a") == "Healthy")
    assert h.gate_saw("a") == [H, S, U, H]
    assert h.link_saw("a") == [H, S, U, H]


def test_a_blocked_probe_does_not_delay_the_others(start_monitor: Callable[..., Harness],
                                                   wait_for: WaitFor) -> None:
    h = start_monitor("a", "b")
    h.tick_until("a", "Healthy")
    h.tick_until("b", "Healthy")
    h.transports["a"].hold_probes()
    for _ in range(6):
        h.clock.advance(0.4)
        probes_before = h.transports["b"].probes
        h.monitor.tell(Tick())
        wait_for(lambda before=probes_before: h.transports["b"].probes == before + 1)
        wait_for(lambda: h.describe()["b"]["seconds_since_seen"] == 0.0)  # answered at this instant
    assert h.status("a") == "Unhealthy"
    assert h.status("b") == "Healthy"
    assert h.gate_saw("b") == [H]
    assert h.gate_saw("a") == [H, S, U]
    assert h.transports["a"].probes == 2


def test_stop_closes_transports_and_frees_stuck_probes(start_monitor: Callable[..., Harness],
                                                       wait_for: WaitFor) -> None:
    h = start_monitor("a")
    h.transports["a"].hold_probes()
    h.monitor.tell(Tick())
    wait_for(lambda: h.transports["a"].probes == 1)
    h.monitor.stop(timeout=5.0)
    assert h.transports["a"].closed

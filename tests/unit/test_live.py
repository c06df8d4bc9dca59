"""The live page's view: events from snapshot changes, the per-second timeline, bounded rings."""

from __future__ import annotations

from typing import Any

import pytest

from replog.metrics import HistogramTotals
from replog.service.live import LiveView, Totals, changes, point, quantile

INF = float("inf")


def master(read_only: bool = False, **statuses: str) -> dict[str, Any]:
    return {
        "role": "master",
        "read_only": read_only,
        "quorum": {"available": 3, "needed": 2},
        "secondaries": [
            {"url": url, "status": status, "probe_error": None} for url, status in statuses.items()
        ],
    }


def test_status_changes_and_quorum_become_events_with_a_level() -> None:
    found = changes(master(s1="Healthy", s2="Healthy"), master(True, s1="Suspected", s2="Unhealthy"))
    assert found == [
        ("error", "quorum", "quorum lost: the master is read-only (available 3, needed 2)", None),
        ("warning", "status", "s1: Healthy -> Suspected", "s1"),
        ("error", "status", "s2: Healthy -> Unhealthy", "s2"),
    ]
    back = changes(master(True, s1="Unhealthy"), master(False, s1="Healthy"))
    assert [(level, text) for level, _, text, _ in back] == [
        ("info", "quorum regained: accepting appends (available 3, needed 2)"),
        ("info", "s1: Unhealthy -> Healthy"),
    ]
    assert changes(master(s1="Healthy"), master(s1="Healthy")) == []


def test_a_secondary_adopting_a_log_and_fault_changes_are_events() -> None:
    before = {"role": "secondary", "log_id": None, "faults": {"delay_s": 0.0, "error_rate": 0.0}}
    after = {"role": "secondary", "log_id": "L1", "faults": {"delay_s": 0.5, "error_rate": 0.0}}
    assert [kind for _, kind, _, _ in changes(before, after)] == ["log", "faults"]


def test_role_and_epoch_changes_are_events_for_cluster_mode() -> None:
    found = changes({"role": "secondary", "epoch": 1}, {"role": "master", "epoch": 2})
    assert [kind for _, kind, _, _ in found] == ["role", "role"]


def test_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    buckets = ((0.001, 0.0), (0.002, 50.0), (0.005, 100.0), (INF, 100.0))
    assert quantile(buckets, 0.5) == pytest.approx(0.002)
    assert quantile(buckets, 0.25) == pytest.approx(0.0015)
    assert quantile(buckets, 0.99) == pytest.approx(0.002 + 0.003 * 0.98)
    assert quantile(((0.001, 0.0), (INF, 4.0)), 0.5) == 0.001, "in +Inf: the highest finite bound"
    assert quantile(((0.001, 0.0), (INF, 0.0)), 0.5) is None


def test_a_point_holds_rates_and_the_latency_of_that_second_only() -> None:
    old = Totals({"appends": 100.0}, HistogramTotals(100, 0.1, ((0.001, 100.0), (0.01, 100.0), (INF, 100.0))))
    new = Totals({"appends": 300.0}, HistogramTotals(300, 1.1, ((0.001, 100.0), (0.01, 300.0), (INF, 300.0))))
    p = point(1000.0, 2.0, old, new)
    assert p["appends_per_s"] == 100.0
    assert p["latency_ms"]["mean"] == pytest.approx(5.0)
    assert 1.0 < p["latency_ms"]["p50"] < 10.0, "the earlier, faster appends do not count"
    assert point(1000.0, 1.0, new, new)["latency_ms"] is None, "no appends: no latency"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_view_keeps_bounded_rings_and_survives_a_failing_snapshot() -> None:
    clock, state = FakeClock(), {"n": 0, "fail": False, "status": "Healthy"}

    def describe() -> dict[str, Any]:
        if state["fail"]:
            raise RuntimeError("actors busy")
        return master(s1=str(state["status"]))

    def totals() -> Totals:
        return Totals({"appends": float(state["n"])})

    view = LiveView("m", describe, totals, period_s=0.05, series_s=5, max_events=3, clock=clock)
    assert view.period_s == 0.1, "never faster than 0.1 s"
    for second in range(20):
        clock.now += 1.0
        state["n"] = 10 * second
        state["fail"] = second == 7
        state["status"] = "Healthy" if second % 2 else "Suspected"
        view.sample()
    snapshot = view.snapshot()
    assert len(snapshot["series"]) == 5 and snapshot["series"][-1]["appends_per_s"] == 10.0
    assert len(snapshot["events"]) == 3, "only the newest events are kept"
    assert snapshot["events"][0]["text"] == "s1: Suspected -> Healthy", "newest first"
    view.add("warning", "restart", "s1 restarted", "s1")
    assert view.snapshot()["events"][0]["kind"] == "restart"


def test_what_changed_before_the_first_sample_is_measured_from_the_initial_state() -> None:
    initial = master(True, s1="Unhealthy")
    view = LiveView(
        "m", lambda: master(False, s1="Healthy"), lambda: None, initial=initial, clock=FakeClock()
    )
    view.sample()
    assert [e["kind"] for e in view.snapshot()["events"]] == ["status", "quorum"]


def test_a_first_snapshot_with_an_epoch_is_not_an_epoch_change() -> None:
    assert changes({"role": "master"}, {"role": "master", "epoch": 1}) == []

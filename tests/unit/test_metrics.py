"""NodeMetrics: hooks count what they see, each node has its own registry, off means no-op; and the
scrape-time families read a health snapshot as the master and secondary give it."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from replog.metrics import NodeMetrics
from replog.metrics.families import master_families, node_families, secondary_families, store_families


def samples(text: bytes | str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value}, parsed with prometheus_client's own parser."""
    raw = text.decode() if isinstance(text, bytes) else text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(raw)
        for s in family.samples
    }


def test_appends_are_counted_by_w_and_outcome_and_only_acknowledged_ones_are_timed() -> None:
    metrics = NodeMetrics("m", "master")
    for _ in range(3):
        metrics.appended(2, "ok", 0.0015)
    metrics.appended(2, "read_only", 0.00001)
    metrics.appended(3, "write_concern_timeout", 2.0)
    found = samples(metrics.exposition())
    assert found[("replog_appends_total", (("outcome", "ok"), ("w", "2")))] == 3
    assert found[("replog_appends_total", (("outcome", "read_only"), ("w", "2")))] == 1
    assert found[("replog_append_duration_seconds_count", (("w", "2"),))] == 3
    assert found[("replog_append_duration_seconds_bucket", (("le", "0.002"), ("w", "2")))] == 3
    assert found[("replog_append_duration_seconds_bucket", (("le", "0.001"), ("w", "2")))] == 0
    assert ("replog_append_duration_seconds_count", (("w", "3"),)) not in found
    assert not any(name.endswith("_created") for name, _ in found), "no _created series"
    refused, latency = metrics.append_totals() or (None, None)
    assert refused == 2 and latency is not None and latency.count == 3
    assert latency.sum == pytest.approx(0.0045)


def test_each_node_has_its_own_registry() -> None:
    a, b = NodeMetrics("a", "master"), NodeMetrics("b", "master")
    a.appended(1, "ok", 0.001)
    assert ("replog_appends_total", (("outcome", "ok"), ("w", "1"))) in samples(a.exposition())
    assert ("replog_appends_total", (("outcome", "ok"), ("w", "1"))) not in samples(b.exposition())


def test_timed_fsync_observes_each_call_even_a_failing_one() -> None:
    metrics = NodeMetrics("s", "secondary")
    calls: list[int] = []

    def sync(fd: int) -> None:
        calls.append(fd)
        if fd == 13:
            raise OSError("EIO")

    timed = metrics.timed_fsync(sync)
    timed(3)
    with pytest.raises(OSError):
        timed(13)
    assert calls == [3, 13]
    assert samples(metrics.exposition())[("replog_fsync_duration_seconds_count", ())] == 2


def test_batches_retries_and_probes_per_secondary() -> None:
    metrics = NodeMetrics("m", "master")
    metrics.batch_sent("http://s1", ok=True, seconds=0.002, size_bytes=100)
    metrics.batch_sent("http://s1", ok=False, seconds=1.0, size_bytes=100)
    metrics.probed("http://s1", ok=False)
    metrics.acked_seq_dropped("http://s1")
    found = samples(metrics.exposition())
    s1 = (("secondary", "http://s1"),)
    assert found[("replog_replication_batches_sent_total", s1)] == 2
    assert found[("replog_replication_retries_total", s1)] == 1
    assert found[("replog_replication_sent_bytes_total", s1)] == 200
    assert found[("replog_replication_batch_duration_seconds_count", s1)] == 2
    assert found[("replog_probes_total", (("outcome", "failed"), ("secondary", "http://s1")))] == 1
    assert found[("replog_secondary_acked_seq_drops_total", s1)] == 1


def test_turned_off_every_hook_is_a_no_op() -> None:
    metrics = NodeMetrics("m", "master", enabled=False)
    metrics.appended(1, "ok", 0.001)
    metrics.batch_sent("http://s1", ok=True, seconds=0.001, size_bytes=1)
    metrics.watch(lambda: pytest.fail("a watcher must not be called when metrics are off"))

    def sync(fd: int) -> None:
        pass

    assert metrics.timed_fsync(sync) is sync
    assert metrics.append_totals() is None
    assert not [
        key for key, value in samples(metrics.exposition()).items() if key[0].startswith("replog_") and value
    ]


MASTER_HEALTH: dict[str, Any] = {
    "role": "master",
    "name": "master",
    "log_id": "abc",
    "read_only": False,
    "quorum": {"nodes": 3, "available": 2, "needed": 2},
    "last_seq": 10,
    "waiting_writers": 1,
    "secondaries": [
        {
            "url": "http://s1",
            "status": "Healthy",
            "acked_seq": 10,
            "lag": 0,
            "seconds_since_seen": 0.1,
            "attempt": 0,
            "resent_entries": 4,
        },
        {
            "url": "http://s2",
            "status": "Suspected",
            "acked_seq": 7,
            "lag": 3,
            "seconds_since_seen": None,
            "attempt": 2,
            "resent_entries": 0,
        },
    ],
}


def scrape(*families: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()

    class Fixed:
        def collect(self) -> Any:
            return [f for group in families for f in group]

    registry.register(Fixed())  # type: ignore[arg-type]
    return samples(generate_latest(registry))


def test_master_families_from_its_health() -> None:
    found = scrape(master_families(MASTER_HEALTH), node_families(MASTER_HEALTH, "master"))
    s1, s2 = (("secondary", "http://s1"),), (("secondary", "http://s2"),)
    assert found[("replog_read_only", ())] == 0
    assert found[("replog_waiting_writers", ())] == 1
    assert found[("replog_quorum_available_nodes", ())] == 2
    assert found[("replog_secondary_acked_seq", s1)] == 10
    assert found[("replog_secondary_lag_entries", s2)] == 3
    assert found[("replog_replication_retry_attempt", s2)] == 2
    assert found[("replog_replication_resent_entries_total", s1)] == 4
    assert ("replog_secondary_seconds_since_seen", s2) not in found, "never seen: no value rather than 0"
    status = {labels: value for (name, labels), value in found.items() if name == "replog_secondary_status"}
    assert status == {
        (("secondary", "http://s1"), ("status", "Healthy")): 1,
        (("secondary", "http://s1"), ("status", "Suspected")): 0,
        (("secondary", "http://s1"), ("status", "Unhealthy")): 0,
        (("secondary", "http://s2"), ("status", "Healthy")): 0,
        (("secondary", "http://s2"), ("status", "Suspected")): 1,
        (("secondary", "http://s2"), ("status", "Unhealthy")): 0,
    }
    assert found[("replog_is_master", ())] == 1
    assert found[("replog_node_info", (("log_id", "abc"), ("node", "master"), ("role", "master")))] == 1
    assert ("replog_epoch", ()) not in found, "no epoch before cluster mode"
    assert scrape(node_families({**MASTER_HEALTH, "epoch": 4}, "master"))[("replog_epoch", ())] == 4


def test_secondary_and_store_families() -> None:
    health = {
        "role": "secondary",
        "name": "s1",
        "log_id": None,
        "acked_seq": 5,
        "received_entries": 9,
        "duplicate_entries": 4,
        "faults": {"delay_s": 0.5, "error_rate": 0.2},
    }
    found = scrape(secondary_families(health, 3), node_families(health, "secondary"), store_families(5, 420))
    assert found[("replog_replicate_received_entries_total", ())] == 9
    assert found[("replog_replicate_duplicate_entries_total", ())] == 4
    assert found[("replog_replicate_batches_applied_total", ())] == 3
    assert found[("replog_fault_delay_seconds", ())] == 0.5
    assert found[("replog_log_entries", ())] == 5 and found[("replog_log_bytes", ())] == 420
    assert found[("replog_is_master", ())] == 0
    assert ("replog_log_bytes", ()) not in scrape(store_families(5, None)), "in memory: no file"

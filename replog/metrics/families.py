"""Metric families read at scrape time from what a node already keeps: its health snapshot and store.

Pure functions of plain dicts (the shapes `/health` returns), so they follow the node's own state and
are tested without a node. A key missing from a snapshot (an older or newer node) leaves its family
out rather than failing the scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

STATUSES = ("Healthy", "Suspected", "Unhealthy")
Snapshot = Mapping[str, Any]


def node_families(health: Snapshot, role: str) -> Iterable[Metric]:
    """Both roles: who this node is. Cluster mode (#9) makes `epoch` and `role` change at run time."""
    info = GaugeMetricFamily(
        "replog_node_info", "Constant 1, labelled with the node's name, role and log id.",
        labels=["node", "role", "log_id"],
    )  # fmt: skip
    info.add_metric([str(health.get("name", "")), role, str(health.get("log_id") or "")], 1)
    yield info
    yield GaugeMetricFamily("replog_is_master", "1 on the master, 0 elsewhere.", value=int(role == "master"))
    if isinstance(health.get("epoch"), int):
        yield GaugeMetricFamily(
            "replog_epoch", "The cluster's epoch as this node knows it.", value=health["epoch"]
        )


def store_families(entries: int, size_bytes: int | None) -> Iterable[Metric]:
    yield GaugeMetricFamily(
        "replog_log_entries",
        "Entries held and stored (durable, for a disk log): the stored seq.",
        value=entries,
    )
    if size_bytes is not None:
        yield GaugeMetricFamily("replog_log_bytes", "Size of the log file on disk.", value=size_bytes)


def master_families(health: Snapshot) -> Iterable[Metric]:
    """From `MasterNode.health()`: quorum, waiting writers, and each secondary as the master sees it."""
    yield GaugeMetricFamily(
        "replog_read_only", "1 while the master has no quorum.", value=int(health["read_only"])
    )
    yield GaugeMetricFamily(
        "replog_waiting_writers", "Appends stored and waiting for their w.", value=health["waiting_writers"]
    )
    quorum = health.get("quorum", {})
    for key, text in (("available", "counted toward quorum (not Unhealthy)"), ("needed", "quorum needs")):
        if key in quorum:
            yield GaugeMetricFamily(f"replog_quorum_{key}_nodes", f"Nodes {text}.", value=quorum[key])
    labels = ["secondary"]
    acked = GaugeMetricFamily("replog_secondary_acked_seq", "Highest seq the secondary holds.", labels=labels)
    lag = GaugeMetricFamily(
        "replog_secondary_lag_entries", "Entries stored here, not yet acked.", labels=labels
    )
    status = GaugeMetricFamily(
        "replog_secondary_status", "1 for the secondary's current health status, 0 for the others.",
        labels=["secondary", "status"],
    )  # fmt: skip
    seen = GaugeMetricFamily(
        "replog_secondary_seconds_since_seen", "Seconds since the last good probe.", labels=labels
    )
    attempt = GaugeMetricFamily(
        "replog_replication_retry_attempt", "Consecutive failed batches now (0: replicating).", labels=labels
    )
    resent = CounterMetricFamily(
        "replog_replication_resent_entries", "Entries sent to the secondary more than once.", labels=labels
    )
    for secondary in health["secondaries"]:
        url = [str(secondary["url"])]
        acked.add_metric(url, secondary["acked_seq"])
        lag.add_metric(url, secondary["lag"])
        for name in STATUSES:
            status.add_metric([url[0], name], int(secondary["status"] == name))
        if secondary.get("seconds_since_seen") is not None:
            seen.add_metric(url, secondary["seconds_since_seen"])
        attempt.add_metric(url, secondary.get("attempt", 0))
        resent.add_metric(url, secondary.get("resent_entries", 0))
    yield from (acked, lag, status, seen, attempt, resent)


def secondary_families(health: Snapshot, batches_applied: int) -> Iterable[Metric]:
    """From the secondary's `/health` and its receive counters."""
    yield CounterMetricFamily(
        "replog_replicate_received_entries", "Entries received in batches since start.",
        value=health["received_entries"],
    )  # fmt: skip
    yield CounterMetricFamily(
        "replog_replicate_duplicate_entries", "Entries received that were already held (ignored).",
        value=health["duplicate_entries"],
    )  # fmt: skip
    yield CounterMetricFamily(
        "replog_replicate_batches_applied", "Non-empty batches applied since start.", value=batches_applied
    )
    faults = health.get("faults", {})
    if "delay_s" in faults:
        yield GaugeMetricFamily(
            "replog_fault_delay_seconds", "Injected delay per batch.", value=faults["delay_s"]
        )
    if "error_rate" in faults:
        yield GaugeMetricFamily(
            "replog_fault_error_rate", "Injected chance of a 500.", value=faults["error_rate"]
        )

"""One node's Prometheus metrics, in a registry of its own.

Two kinds of values. Events that nothing else keeps are counted where they happen, through a few
hooks: appends by w and outcome with their latency (`service.metered`), one observation per fsync
(the store's sync function, wrapped) and the batches and probes of each secondary (its transport,
wrapped: `net.metered`). Everything the node already keeps (acked seqs, lag, statuses, resent
entries, read-only, waiting writers, stored entries) is read at scrape time by collectors over the
node's own snapshots (`replog.metrics.families`), so no hook follows each change and a refactor of
the actors cannot silently stop a metric.

A registry per node, never prometheus_client's global one: tests run several nodes in one process.
`NodeMetrics(enabled=False)` (`--no-metrics`) turns every hook into a no-op and `/metrics` off: the
way to measure what the hooks cost.

Threads: the hooks run on request threads, the store's flusher and the links' sender and prober
threads; prometheus_client guards each value with its own lock, held for an addition only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# Appends answer in a fraction of a millisecond (w=1, in memory) up to the client's own timeout.
APPEND_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# One fdatasync here: ~0.1-0.5 ms on a quiet SSD, tens of ms on a busy or networked disk.
FSYNC_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# One POST /replicate round trip, up to the replicate timeout.
BATCH_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus server reads

SyncFd = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class HistogramTotals:
    """Cumulative figures of a histogram, summed over its labels: read each second by the live page."""

    count: float
    sum: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), +Inf last


class _Callback(Collector):
    """A collector whose families come from a function called at each scrape."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


class NodeMetrics:
    def __init__(self, node: str, role: str, *, enabled: bool = True) -> None:
        self.node, self.role, self.enabled = node, role, enabled
        # No `*_created` series: in the text format each would be one more series per counter and
        # histogram, of no use to a Prometheus server. The switch is process-wide (a node is a process).
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client
        self.registry = CollectorRegistry()
        r = self.registry
        self._appends = Counter(
            "replog_appends",
            "Appends that reached the append path (after parsing), by w and outcome: ok or the error "
            "code (read_only, overloaded, write_concern_timeout, ...). A bulk append counts once.",
            ["w", "outcome"],
            registry=r,
        )
        self._append_seconds = Histogram(
            "replog_append_duration_seconds",
            "Time from taking an append to acknowledging it (w met), acknowledged appends only.",
            ["w"],
            buckets=APPEND_BUCKETS_S,
            registry=r,
        )
        self._fsync_seconds = Histogram(
            "replog_fsync_duration_seconds",
            "Duration of one fsync of the log file (one per group commit).",
            buckets=FSYNC_BUCKETS_S,
            registry=r,
        )
        self._batches = Counter(
            "replog_replication_batches_sent",
            "POST /replicate calls to a secondary, handshakes included, whatever their outcome.",
            ["secondary"],
            registry=r,
        )
        self._retries = Counter(
            "replog_replication_retries",
            "Batches to a secondary that failed (no answer, timeout, error status): each is retried.",
            ["secondary"],
            registry=r,
        )
        self._batch_seconds = Histogram(
            "replog_replication_batch_duration_seconds",
            "Round trip of one POST /replicate to a secondary, answered or not.",
            ["secondary"],
            buckets=BATCH_BUCKETS_S,
            registry=r,
        )
        self._sent_bytes = Counter(
            "replog_replication_sent_bytes",
            "Bytes of batch bodies sent to a secondary.",
            ["secondary"],
            registry=r,
        )
        self._probes = Counter(
            "replog_probes",
            "Heartbeat probes of a secondary by outcome (ok, failed).",
            ["secondary", "outcome"],
            registry=r,
        )
        self._acked_drops = Counter(
            "replog_secondary_acked_seq_drops",
            "Times a secondary answered with a lower acked seq than before: it restarted without its log.",
            ["secondary"],
            registry=r,
        )
        # Cluster mode: replog_epoch and replog_is_master come from the snapshot families.
        self._master_changes = Counter(
            "replog_master_changes",
            "Times this node saw the master change (cluster mode): a new master learned or elected.",
            registry=r,
        )
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        # Label lookups cost more than the additions: hooks keep the children they use.
        self._append_children: dict[tuple[int, str], tuple[Any, Any]] = {}
        self._batch_children: dict[str, tuple[Any, Any, Any, Any]] = {}

    # hooks -----------------------------------------------------------------------------------------
    def appended(self, w: int, outcome: str, seconds: float) -> None:
        """A request thread finished an append: `outcome` is "ok" or the error code it got."""
        if not self.enabled:
            return
        children = self._append_children.get((w, outcome))
        if children is None:  # a race here only looks up the same children twice
            latency = self._append_seconds.labels(str(w)) if outcome == "ok" else None
            children = self._append_children[(w, outcome)] = (self._appends.labels(str(w), outcome), latency)
        counter, latency = children
        counter.inc()
        if latency is not None:
            latency.observe(seconds)

    def timed_fsync(self, sync: SyncFd) -> SyncFd:
        """`sync` with each call observed in the fsync histogram (on the store's flusher thread)."""
        if not self.enabled:
            return sync
        histogram = self._fsync_seconds

        def timed(fd: int) -> None:
            started = time.perf_counter()
            try:
                sync(fd)
            finally:
                histogram.observe(time.perf_counter() - started)

        return timed

    def master_changed(self) -> None:
        """Cluster mode: this node's view of who is master changed (the role-switch hook)."""
        if self.enabled:
            self._master_changes.inc()

    def add_secondary(self, secondary: str) -> None:
        """Export each counter of a secondary at 0 from the start, so `rate()` and alerts see its
        first failure as an increase rather than as a series appearing."""
        if not self.enabled:
            return
        self._acked_drops.labels(secondary)
        for outcome in ("ok", "failed"):
            self._probes.labels(secondary, outcome)
        self._batch_children[secondary] = (
            self._batches.labels(secondary),
            self._sent_bytes.labels(secondary),
            self._batch_seconds.labels(secondary),
            self._retries.labels(secondary),
        )

    def batch_sent(self, secondary: str, *, ok: bool, seconds: float, size_bytes: int) -> None:
        """A link's sender thread: one POST /replicate ended, answered (ok) or not."""
        if not self.enabled:
            return
        if secondary not in self._batch_children:
            self.add_secondary(secondary)
        batches, sent_bytes, batch_seconds, retries = self._batch_children[secondary]
        batches.inc()
        sent_bytes.inc(size_bytes)
        batch_seconds.observe(seconds)
        if not ok:
            retries.inc()

    def probed(self, secondary: str, *, ok: bool) -> None:
        if self.enabled:
            self._probes.labels(secondary, "ok" if ok else "failed").inc()

    def acked_seq_dropped(self, secondary: str) -> None:
        if self.enabled:
            self._acked_drops.labels(secondary).inc()

    # scrape time -----------------------------------------------------------------------------------
    def watch(self, collect: Callable[[], Iterable[Metric]]) -> None:
        """Add families computed at each scrape from the node's own state."""
        if self.enabled:
            self.registry.register(_Callback(collect))

    def exposition(self) -> bytes:
        """The text format of every metric of this node (its content type is `CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    # read back (the live page's per-second timeline) ---------------------------------------------------
    def append_totals(self) -> tuple[float, HistogramTotals] | None:
        """(appends refused or failed so far, histogram of acknowledged appends), summed over w;
        None when metrics are off."""
        if not self.enabled:
            return None
        failed = sum(
            s.value
            for family in self._appends.collect()
            for s in family.samples
            if s.name.endswith("_total") and s.labels.get("outcome") != "ok"
        )
        return failed, _summed(self._append_seconds)


def _summed(histogram: Histogram) -> HistogramTotals:
    count = total = 0.0
    buckets: dict[float, float] = {}
    for family in histogram.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return HistogramTotals(count, total, tuple(sorted(buckets.items())))

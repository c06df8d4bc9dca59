"""Cluster mode's view of a master's calls: who answered (for the lease) and who knows a newer epoch.

A master in cluster mode wraps each secondary's transports in a `FencedTransport`. Every call that
is answered 200 records when it was *sent*, in the master's `Lease`: the master may take writes only
until the minimum election timeout after the newest send that a majority answered
(`core.election.lease_deadline`), so it turns read-only by itself before any other master can be
elected (FAILOVER.md §6). A call refused as `stale_epoch` reports the newer epoch, which the node
hands to its election actor so that it steps down at once.

Threads: `replicate` runs on a link's sender thread, `probe` on a heartbeat prober thread; the
lease is read by request threads (through the quorum view). One small lock, never held during I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from replog.core.election import ElectionConfig, lease_deadline
from replog.core.entry import Entry
from replog.net.transport import ProbeResult, Transport, TransportError


class Lease:
    """When each other member last answered a call, by its send time, for one master's term."""

    def __init__(self, config: ElectionConfig, clock: Callable[[], float]) -> None:
        self._config, self._clock = config, clock
        self._lock = threading.Lock()
        self._sent_at: dict[str, float] = {}

    def answered(self, member: str, sent_at: float) -> None:
        with self._lock:
            if sent_at > self._sent_at.get(member, float("-inf")):
                self._sent_at[member] = sent_at

    def deadline(self) -> float | None:
        """Until when this master may take writes (None: a majority has not answered yet)."""
        with self._lock:
            contacts = dict(self._sent_at)
        return lease_deadline(contacts, self._config)

    def valid(self) -> bool:
        deadline = self.deadline()
        return deadline is not None and self._clock() < deadline


class FencedTransport:
    """A secondary's transport that reports answers to the lease and newer epochs to `on_epoch`.

    Acks pass through as the secondary answered them: what counts toward w is decided by the
    link's `core.replication.LinkState`, which caps an ack at what its batch proved by log
    matching. (An interim `Verified` layer here capped acks at batches proven contiguously from
    seq 1 in the term, resending a member's whole log after each failover; log matching replaced
    it: a role's links, gate and acks are all of its own epoch.)"""

    def __init__(
        self,
        inner: Transport,
        member: str,
        lease: Lease,
        clock: Callable[[], float],
        on_epoch: Callable[[int], None],
    ) -> None:
        self._inner, self._member, self._lease = inner, member, lease
        self._clock, self._on_epoch = clock, on_epoch

    def replicate(self, body: bytes) -> int:
        sent_at = self._clock()
        try:
            acked = self._inner.replicate(body)
        except TransportError as exc:
            self._refused(exc)
            raise
        self._lease.answered(self._member, sent_at)
        return acked

    def probe(self) -> ProbeResult:
        sent_at = self._clock()
        try:
            result = self._inner.probe()
        except TransportError as exc:
            self._refused(exc)
            raise
        self._lease.answered(self._member, sent_at)
        return result

    def fetch_entries(self, from_seq: int, limit: int) -> list[Entry]:
        """Reads a peer's entries (a master behind its secondaries); no lease or epoch news in it."""
        return self._inner.fetch_entries(from_seq, limit)

    def close(self) -> None:
        self._inner.close()

    def _refused(self, exc: TransportError) -> None:
        if exc.epoch is not None:
            self._on_epoch(exc.epoch)

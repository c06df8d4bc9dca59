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

import json
import threading
from collections.abc import Callable
from dataclasses import replace

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


class Verified:
    """How far one member's log is known to be this master's, in this term (interim log matching).

    A secondary's acked seq alone proves nothing after a failover: a node that was master before
    may hold entries of its own at those seqs. A secondary applies a batch only if every entry it
    already holds at the batch's seqs is the same (same epoch and message, else 409
    `log_conflict`), so an applied batch proves its own seqs; a prefix is proven once the batches
    that proved it run contiguously from seq 1 in this term. Only that proven seq is reported to the
    link and the gate, so an ack never counts for an entry the member may hold differently. The cost:
    the first batches of a term resend what a member already holds. The log-matching work (issue 11
    C7/C8: batches carrying the previous (seq, epoch), diverged suffixes rolled back) replaces this."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seq = 0

    def batch_applied(self, first_seq: int, count: int, acked: int) -> int:
        with self._lock:
            last = first_seq + count - 1
            if count and first_seq - 1 <= self.seq and acked >= last:
                self.seq = max(self.seq, last)
            self.seq = min(self.seq, acked)  # a member that lost entries proves less
            return self.seq

    def answered(self, acked: int) -> int:
        with self._lock:
            self.seq = min(self.seq, acked)
            return self.seq


def batch_span(body: bytes) -> tuple[int, int]:
    """(first_seq, entry count) of an encoded batch (`core.wire.encode_batch`'s compact form)."""
    batch = json.loads(body)
    return int(batch["first_seq"]), len(batch["messages"])


class FencedTransport:
    """A secondary's transport that reports answers to the lease, newer epochs to `on_epoch`, and
    only the acked seq `verified` proves (shared by the member's link and heartbeat transports)."""

    def __init__(
        self,
        inner: Transport,
        member: str,
        lease: Lease,
        clock: Callable[[], float],
        on_epoch: Callable[[int], None],
        verified: Verified | None = None,
    ) -> None:
        self._inner, self._member, self._lease = inner, member, lease
        self._clock, self._on_epoch = clock, on_epoch
        self._verified = verified if verified is not None else Verified()

    def replicate(self, body: bytes) -> int:
        first_seq, count = batch_span(body)
        sent_at = self._clock()
        try:
            acked = self._inner.replicate(body)
        except TransportError as exc:
            self._refused(exc)
            raise
        self._lease.answered(self._member, sent_at)
        return self._verified.batch_applied(first_seq, count, acked)

    def probe(self) -> ProbeResult:
        sent_at = self._clock()
        try:
            result = self._inner.probe()
        except TransportError as exc:
            self._refused(exc)
            raise
        self._lease.answered(self._member, sent_at)
        return replace(result, acked_seq=self._verified.answered(result.acked_seq))

    def fetch_entries(self, from_seq: int, limit: int) -> list[Entry]:
        """Reads a peer's entries (a master behind its secondaries); no lease or epoch news in it."""
        return self._inner.fetch_entries(from_seq, limit)

    def close(self) -> None:
        self._inner.close()

    def _refused(self, exc: TransportError) -> None:
        if exc.epoch is not None:
            self._on_epoch(exc.epoch)

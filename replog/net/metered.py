"""A `Transport` that counts what passes through it, and notices a secondary that lost its log.

The master wraps each secondary's transports (the link's and the heartbeat's) in one of these, so
batches sent, retries, their round trips and the probes are counted without a hook in the actors.
Each also shows its channel's acked seqs to the secondary's `AckWatch`: within one channel (one
request in flight at a time) a secondary's acked seq never goes down unless it lost entries, which
is how a restart without its log is detected.

Threads: `replicate` runs on the link's sender thread, `probe` on the heartbeat's prober thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from replog.core.entry import Entry
from replog.metrics import NodeMetrics
from replog.net.transport import ProbeResult, Transport, TransportError

DropCallback = Callable[[str, int, int], None]  # (secondary, acked before, acked now)


class AckWatch:
    """One secondary's acked seqs per channel; reports a drop once, even when both channels see it."""

    def __init__(self, url: str, on_drop: DropCallback, *, quiet_s: float = 2.0) -> None:
        self._url, self._on_drop, self._quiet_s = url, on_drop, quiet_s
        self._lock = threading.Lock()
        self._last: dict[str, int] = {}
        self._reported_at = float("-inf")

    def saw(self, channel: str, acked_seq: int) -> None:
        with self._lock:
            before = self._last.get(channel)
            self._last[channel] = acked_seq
            if before is None or acked_seq >= before:
                return
            now = time.monotonic()
            if now - self._reported_at < self._quiet_s:  # the other channel seeing the same restart
                return
            self._reported_at = now
        self._on_drop(self._url, before, acked_seq)  # outside the lock


class MeteredTransport:
    def __init__(self, inner: Transport, url: str, metrics: NodeMetrics, watch: AckWatch) -> None:
        self._inner, self._url, self._metrics, self._watch = inner, url, metrics, watch

    def replicate(self, body: bytes) -> int:
        started = time.perf_counter()
        try:
            acked = self._inner.replicate(body)
        except TransportError:
            self._sent(False, started, len(body))
            raise
        self._sent(True, started, len(body))
        self._watch.saw("replicate", acked)
        return acked

    def probe(self) -> ProbeResult:
        try:
            result = self._inner.probe()
        except TransportError:
            self._metrics.probed(self._url, ok=False)
            raise
        self._metrics.probed(self._url, ok=True)
        self._watch.saw("probe", result.acked_seq)
        return result

    def fetch_entries(self, from_seq: int, limit: int) -> list[Entry]:
        return self._inner.fetch_entries(from_seq, limit)

    def close(self) -> None:
        self._inner.close()

    def _sent(self, ok: bool, started: float, size_bytes: int) -> None:
        seconds = time.perf_counter() - started
        self._metrics.batch_sent(self._url, ok=ok, seconds=seconds, size_bytes=size_bytes)


def metered(
    make: Callable[[str], Transport], metrics: NodeMetrics, on_drop: DropCallback
) -> Callable[[str], Transport]:
    """A transport factory whose transports are metered; both of one secondary share its `AckWatch`."""
    watches: dict[str, AckWatch] = {}

    def make_metered(url: str) -> Transport:
        if url not in watches:
            watches[url] = AckWatch(url, on_drop)
            metrics.add_secondary(url)
        watch = watches[url]
        return MeteredTransport(make(url), url, metrics, watch)

    return make_metered

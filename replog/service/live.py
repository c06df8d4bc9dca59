"""What the live page shows beyond `/health`: a per-second timeline of the last minutes, and events.

A sampler thread reads the node's own snapshot every `period_s` (the heartbeat interval, within
0.1..1 s) and keeps:
- a timeline: once a second, the rates of the node's cumulative counters since the last point
  (appends acknowledged and refused on a master, entries and batches received on a secondary) and
  the acknowledgement latency of that second (mean, p50, p99 from the latency histogram's buckets);
- events: what changed between two snapshots (a secondary's status, quorum lost or regained, a log
  adopted, fault settings, role or epoch), plus those reported directly (`add`), such as a secondary
  found to have restarted without its log.
Both are bounded rings (`series_s` points, `max_events` events), so memory does not grow.

Reading snapshots instead of hooking each transition keeps the actors untouched; the price is that a
state shorter than one sampling period can go unseen (the heartbeat itself moves no faster).

Threads: `sample` runs on the sampler thread (or a test's); `add` on any thread; `snapshot` on
request threads. One lock guards both rings and is never held while the node is asked anything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from replog.actors.threads import Ticker
from replog.metrics import HistogramTotals

log = logging.getLogger(__name__)

Snapshot = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Totals:
    """Cumulative figures at one moment: counters by name, and the latency histogram if any."""

    counts: Mapping[str, float]
    latency: HistogramTotals | None = None


@dataclass(frozen=True, slots=True)
class Event:
    t: float  # wall-clock seconds
    level: str  # info | warning | error
    kind: str  # started | status | quorum | restart | log | faults | role
    text: str
    subject: str | None = None  # the secondary concerned, if one


# pure rules ----------------------------------------------------------------------------------------
def changes(old: Snapshot, new: Snapshot) -> list[tuple[str, str, str, str | None]]:
    """(level, kind, text, subject) for each change worth an event between two snapshots."""
    found: list[tuple[str, str, str, str | None]] = []
    if old.get("role") != new.get("role"):
        found.append(("warning", "role", f"role changed from {old.get('role')} to {new.get('role')}", None))
    if "epoch" in new and old.get("epoch") is not None and old["epoch"] != new["epoch"]:
        found.append(("info", "role", f"epoch is now {new['epoch']}", None))
    if "read_only" in new and old.get("read_only") is not None and old["read_only"] != new["read_only"]:
        quorum = new.get("quorum", {})
        figures = f"(available {quorum.get('available')}, needed {quorum.get('needed')})"
        if new["read_only"]:
            found.append(("error", "quorum", f"quorum lost: the master is read-only {figures}", None))
        else:
            found.append(("info", "quorum", f"quorum regained: accepting appends {figures}", None))
    before = {s["url"]: s for s in old.get("secondaries", ())}
    for secondary in new.get("secondaries", ()):
        url, then = secondary["url"], before.get(secondary["url"])
        if then is None:
            continue
        if then["status"] != secondary["status"]:
            level = {"Healthy": "info", "Suspected": "warning"}.get(secondary["status"], "error")
            text = f"{url}: {then['status']} -> {secondary['status']}"
            found.append((level, "status", text, url))
        error = secondary.get("probe_error") or ""
        if error.startswith("log_id_mismatch") and error != (then.get("probe_error") or ""):
            found.append(("error", "log", f"{url} refused: {error}", url))
    if old.get("log_id") is None and new.get("log_id") is not None and "secondaries" not in new:
        found.append(("info", "log", f"holds log {new['log_id']} now", None))
    if "faults" in new and old.get("faults") != new["faults"]:
        faults = new["faults"]
        text = f"fault injection: delay {faults.get('delay_s')} s, error rate {faults.get('error_rate')}"
        found.append(("warning", "faults", text, None))
    return found


def quantile(buckets: tuple[tuple[float, float], ...], q: float) -> float | None:
    """Prometheus's `histogram_quantile`: linear within the bucket holding rank q; None if empty."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def point(t: float, dt: float, old: Totals, new: Totals) -> dict[str, Any]:
    """One second of the timeline: each counter's rate, and that second's acknowledgement latency."""
    out: dict[str, Any] = {"t": round(t, 3)}
    for name, value in new.counts.items():
        out[f"{name}_per_s"] = round(max(0.0, value - old.counts.get(name, 0.0)) / dt, 2)
    out["latency_ms"] = None
    if old.latency is not None and new.latency is not None:
        count = new.latency.count - old.latency.count
        if count > 0:
            before = dict(old.latency.buckets)
            delta = tuple((b, c - before.get(b, 0.0)) for b, c in new.latency.buckets)
            p50, p99 = quantile(delta, 0.5), quantile(delta, 0.99)
            out["latency_ms"] = {
                "mean": round(1000 * (new.latency.sum - old.latency.sum) / count, 3),
                "p50": None if p50 is None else round(1000 * p50, 3),
                "p99": None if p99 is None else round(1000 * p99, 3),
            }
    return out


# the shell -----------------------------------------------------------------------------------------
class LiveView:
    def __init__(
        self,
        node: str,
        describe: Callable[[], Snapshot],
        totals: Callable[[], Totals | None],
        *,
        period_s: float = 1.0,
        series_s: int = 300,
        max_events: int = 100,
        clock: Callable[[], float] = time.time,
        initial: Snapshot | None = None,
    ) -> None:
        """`describe` gives the node's snapshot (its /health), `totals` its cumulative counters;
        `initial` is the state the node starts in (a master: read-only, every secondary Unhealthy),
        so that what changed before the first sample still becomes events."""
        self._node, self._describe, self._totals = node, describe, totals
        self.period_s = min(1.0, max(0.1, period_s))
        self._clock = clock
        self._lock = threading.Lock()
        self._series: deque[dict[str, Any]] = deque(maxlen=series_s)
        self._events: deque[Event] = deque(maxlen=max_events)
        self._last_snapshot: Snapshot | None = initial
        self._last_totals: Totals | None = None
        self._last_point_at = 0.0
        self._ticker: Ticker | None = None

    def start(self) -> None:
        self.add("info", "started", f"{self._node} started")
        self._ticker = Ticker(f"live-{self._node}", self.period_s, self.sample)

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()

    def add(self, level: str, kind: str, text: str, subject: str | None = None) -> None:
        """Any thread: record an event now."""
        with self._lock:
            self._events.append(Event(round(self._clock(), 3), level, kind, text, subject))

    def sample(self) -> None:
        """The sampler thread: diff the snapshot for events; once a second, add a timeline point."""
        try:
            snapshot = self._describe()
        except Exception as exc:  # shutting down, or the actors busy: try again next period
            log.debug("live view: no snapshot node=%s error=%s", self._node, exc)
            snapshot = None
        if snapshot is not None:
            previous, self._last_snapshot = self._last_snapshot, snapshot
            for level, kind, text, subject in changes(previous, snapshot) if previous is not None else ():
                self.add(level, kind, text, subject)
        now = self._clock()
        if now - self._last_point_at < 1.0 - self.period_s / 2:
            return
        totals = self._totals()
        previous_totals, self._last_totals = self._last_totals, totals
        dt, self._last_point_at = now - self._last_point_at, now
        if totals is not None and previous_totals is not None and dt > 0:
            with self._lock:
                self._series.append(point(now, dt, previous_totals, totals))

    def snapshot(self) -> dict[str, Any]:
        """The timeline, oldest first, and the events, newest first."""
        with self._lock:
            return {
                "period_s": self.period_s,
                "series": list(self._series),
                "events": [asdict(e) for e in reversed(self._events)],
            }

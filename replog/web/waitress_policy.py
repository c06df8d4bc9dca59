"""How long a connection may take and how many may stay: waitress subclassed, for the adapter only.

waitress bounds neither the time a client takes to send its request (a byte every few seconds keeps
a connection forever: slowloris) nor, below `channel_timeout`, an idle one; at `connection_limit`
it stops accepting, so a flood of idle sockets locks everyone out; and it renders its own errors
as text/plain. Here, on the I/O loop's thread:

- a request (request line, headers and body) must arrive within `request_timeout_s` of its first
  byte, or of the accept for a connection's first request: past that a partial request is answered
  `408 {"error": "request_timeout"}` and the connection closed (one that never sent a byte is closed
  without an answer, like an idle one);
- a kept-alive connection with nothing in flight is closed after `idle_timeout_s` of silence, and so
  is one whose client stopped reading an answer (which frees the worker thread writing it);
- at the connection limit the oldest-active connections that have no request being served are
  closed (`evict_fraction` of the limit at a time), so new clients, /health included, get in;
- waiting connections are accepted in batches, not one per loop iteration.

Each connection is a `replog.web.waitress_channel.ReplogChannel`, which also answers waitress's own
errors in JSON and closes lingering after them. Every waitress internal used here is listed and
checked by `replog.web.waitress_adapter`.
"""

from __future__ import annotations

import heapq
import logging
import time
from dataclasses import dataclass
from typing import Any

from waitress.server import TcpWSGIServer

from replog.core.errors import RequestTimeout
from replog.web.waitress_channel import ReplogChannel

log = logging.getLogger(__name__)

ACCEPT_BATCH = 64  # connections accepted per readiness event of the listening socket
EVICTION_PAUSE_S = 0.05  # at the limit with every connection busy, look again after this long
WARN_EVERY_S = 10.0  # hostile traffic must not flood the log: one summary line per this interval


@dataclass(frozen=True, slots=True)
class ConnectionPolicy:
    request_timeout_s: float = 10.0  # from a request's first byte (or the accept) to its last
    idle_timeout_s: float = 30.0  # a kept-alive connection with nothing to do; a client not reading
    evict_fraction: float = 0.05  # at the limit, close this share of it (the least recently active)

    def __post_init__(self) -> None:
        if self.request_timeout_s <= 0 or self.idle_timeout_s <= 0:
            raise ValueError("request and idle timeouts must be > 0 seconds")
        if not 0 < self.evict_fraction <= 1:
            raise ValueError("evict_fraction must be within (0, 1]")

    @property
    def sweep_interval_s(self) -> float:
        """How often the loop looks for connections past their time (it also wakes every second)."""
        return min(1.0, self.request_timeout_s / 4, self.idle_timeout_s / 4)


class ReplogServer(TcpWSGIServer):
    """waitress's TCP server with the policy above; every override runs on the loop's thread."""

    channel_class = ReplogChannel

    def __init__(self, application: Any, *, adj: Any, policy: ConnectionPolicy) -> None:
        self.policy = policy
        self._next_sweep = 0.0
        self._next_eviction = 0.0
        self._next_warning = 0.0
        self._counts = {"request_timeout": 0, "idle": 0, "not_reading": 0, "evicted": 0}
        super().__init__(application, adj=adj)

    def maintenance(self, now: float) -> None:
        """waitress's own idle sweep: replaced by `sweep` (and not called by `readable` below)."""

    def before_iteration(self) -> None:
        """Loop thread, before each iteration of the loop builds its list of descriptors: close the
        connections past their time now, never while the list is built (a descriptor closed then
        would be handed to select() closed, which raises)."""
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + self.policy.sweep_interval_s
            self.sweep(now)

    def readable(self) -> bool:
        """Loop thread, every iteration: whether to accept. Replaces waitress's, which stops
        accepting at the limit (logging each time it does) until a connection closes by itself."""
        now = time.time()
        if not self.accepting:
            return False
        if len(self._map) < self.adj.connection_limit:
            return True
        if now >= self._next_eviction and not self.evict():
            self._next_eviction = now + EVICTION_PAUSE_S  # nothing to evict: everything is busy
        return False  # those evicted close in this iteration; accepting resumes in the next

    def handle_accept(self) -> None:
        """Loop thread: accept up to ACCEPT_BATCH waiting connections per readiness event. waitress
        takes one per loop iteration, and an iteration costs O(open connections) (every channel is
        asked readable()/writable()), so a burst of N connects took O(N^2): seconds for /health."""
        for _ in range(ACCEPT_BATCH):
            before = len(self._map)
            if before >= self.adj.connection_limit:
                return
            super().handle_accept()
            if len(self._map) == before:  # nothing was waiting, or that accept failed
                return

    def _channels(self) -> list[ReplogChannel]:
        return [c for c in list(self.active_channels.values()) if isinstance(c, ReplogChannel)]

    def sweep(self, now: float) -> None:
        """Close connections past their time (see the module's docstring)."""
        for channel in self._channels():
            reason = self._overdue(channel, now)
            if reason is not None:
                self._count(reason)
        self._maybe_warn(now)

    def _overdue(self, channel: ReplogChannel, now: float) -> str | None:
        """Close `channel` if it is past its time; return why, for the summary line (None: kept or
        already closing)."""
        policy = self.policy
        if channel.closing():
            channel.finish_closing(now)
            return None
        if channel.total_outbufs_len:
            if now - channel.last_activity <= policy.idle_timeout_s:
                return None
            # Its client stopped reading. Closed at once: the socket will not become writable, so a
            # flag for the write handler would never be acted on. Wakes the worker blocked writing
            # (if any) with ClientDisconnected.
            channel.close_now()
            return "not_reading"
        if channel.busy():
            return None  # e.g. a writer waiting for w: its own deadline applies, not ours
        if channel.receiving_since is not None:
            if now - channel.receiving_since <= policy.request_timeout_s:
                return None
            if channel.request is None:
                channel.will_close = True  # connected and never sent a byte: nothing to answer
            else:
                channel.answer_timeout_and_close(
                    RequestTimeout(
                        f"the request did not arrive within {policy.request_timeout_s:g} s",
                        limit_s=policy.request_timeout_s,
                    )
                )
            return "request_timeout"
        if now - channel.last_activity > policy.idle_timeout_s:
            channel.will_close = True
            return "idle"
        return None

    def evict(self) -> int:
        """At the connection limit: close the least recently active connections that have no request
        being served, down to `evict_fraction` below the limit, counting those already closing.
        Returns how many are closing now (0: every connection is busy)."""
        channels = self._channels()
        limit = self.adj.connection_limit
        target = limit - max(1, int(limit * self.policy.evict_fraction))
        closing = sum(1 for c in channels if c.closing())
        excess = len(self._map) - closing - target
        if excess > 0:
            candidates = [c for c in channels if not c.closing() and not c.busy()]
            for channel in heapq.nsmallest(excess, candidates, key=lambda c: c.last_activity):
                channel.will_close = True
                closing += 1
                self._count("evicted")
            self._maybe_warn(time.time())
        return closing

    def _count(self, reason: str) -> None:
        self._counts[reason] += 1

    def _maybe_warn(self, now: float) -> None:
        """One summary line per WARN_EVERY_S: WARNING when clients were cut off (evicted, too slow to
        send, not reading), DEBUG when only idle keep-alive connections were closed (routine)."""
        if now < self._next_warning or not any(self._counts.values()):
            return
        self._next_warning = now + WARN_EVERY_S
        level = logging.DEBUG if set(k for k, v in self._counts.items() if v) == {"idle"} else logging.WARNING
        log.log(
            level,
            "closed connections port=%s open=%d limit=%d %s",
            self.effective_port,
            len(self.active_channels),
            self.adj.connection_limit,
            " ".join(f"{k}={v}" for k, v in self._counts.items()),
        )
        self._counts = dict.fromkeys(self._counts, 0)

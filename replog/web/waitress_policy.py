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
- waiting connections are accepted in batches, not one per loop iteration;
- errors waitress itself produces (bad request line, oversized headers, bad Content-Length, a body
  over the limit) are JSON `{"error", "detail"}` with a stable code, as every other answer;
- after such an error (and a 408) the connection closes *lingering*: the write side is shut and what
  the client still sends is read and dropped (at most `LINGER_BYTES`, for at most `LINGER_S`), since
  closing with unread input makes the kernel send a reset that destroys the answer in the client's
  receive buffer before it reads it (nginx's "lingering close").

Every waitress internal used here is listed and checked by `replog.web.waitress_adapter`.
"""

from __future__ import annotations

import heapq
import http
import json
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask
from waitress.utilities import BadRequest as WaitressBadRequest
from waitress.utilities import RequestEntityTooLarge, RequestHeaderFieldsTooLarge, ServerNotImplemented

from replog.core.errors import (
    BadRequest,
    HeadersTooLarge,
    NotImplementedByServer,
    PayloadTooLarge,
    ReplogError,
    RequestTimeout,
)

log = logging.getLogger(__name__)

LINGER_S = 2.0  # after an error answer, read and drop the client's input this long at most ...
LINGER_BYTES = 64 * 1024 * 1024  # ... and this much at most, then close
LINGER_RECV_BYTES = 256 * 1024  # dropped input is read in big pieces: few loop iterations
CLOSING_GRACE_S = 5.0  # a connection closing after its last answer is closed as it is after this
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


def http_error_bytes(error: ReplogError) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and JSON body of an error answered by the HTTP layer itself (which
    then closes the connection)."""
    body = json.dumps(error.body()).encode()
    status = f"{error.status} {http.HTTPStatus(error.status).phrase}"
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]
    return status, headers, body


def translate(error: Any, adj: Any) -> ReplogError:
    """One of waitress's own errors (`request.error`) as ours, with our codes and limits."""
    if isinstance(error, RequestEntityTooLarge):
        limit = adj.max_request_body_size - 1  # waitress refuses a body of max_request_body_size or more
        return PayloadTooLarge(f"request body is over the limit of {limit} bytes", limit_bytes=limit)
    if isinstance(error, RequestHeaderFieldsTooLarge):
        return HeadersTooLarge(
            f"request line and headers are over the limit of {adj.max_request_header_size} bytes"
        )
    if isinstance(error, WaitressBadRequest):  # after its subclasses above
        return BadRequest(f"malformed HTTP request: {error.body}")
    if isinstance(error, ServerNotImplemented):
        return NotImplementedByServer(str(error.body))
    return ReplogError("internal error; see the node's log")


class JsonErrorTask(ErrorTask):
    """waitress's error answer, in JSON. Runs on a worker thread, as waitress's own does."""

    def execute(self) -> None:
        error = translate(self.request.error, self.channel.adj)
        status, headers, body = http_error_bytes(error)
        self.channel.linger_after_close = True
        self.status = status
        self.response_headers.extend(headers)
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class ReplogChannel(HTTPChannel):
    """A connection that knows since when its current request has been arriving."""

    error_task_class = JsonErrorTask
    request: Any = None  # as in HTTPChannel: the parser of the request being received, if any

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        super().__init__(server, sock, addr, adj, map)
        # A new connection owes its first request from the accept on; None: nothing owed (kept alive).
        self.receiving_since: float | None = self.creation_time
        self._timed: object = None  # the parser whose arrival `receiving_since` times
        self.linger_after_close = False  # set with an error answer: close lingering (see the module)
        self.lingering_until: float | None = None  # set while lingering: the write side is shut
        self._lingered_bytes = 0
        self.closing_since: float | None = None  # when the sweep first saw it closing

    def received(self, data: bytes) -> bool:
        """Loop thread. Parse as waitress does, then restart the clock if a new request began."""
        if self.linger_after_close:
            return False  # an error answer is on its way and the connection closes: input is dropped
        now = time.time()
        result: bool = super().received(data)
        current: object = self.request
        if current is None:
            self.receiving_since, self._timed = None, None
        elif current is not self._timed:
            if self._timed is not None or self.receiving_since is None:
                self.receiving_since = now
            self._timed = current
        return result

    # No readable()/writable() overrides: the loop asks every channel both on every iteration, so an
    # extra Python frame there costs O(open connections) per iteration. While lingering, waitress's
    # own give the right answers: nothing is in flight, closing or unsent, so readable and not
    # writable.

    def handle_read(self) -> None:
        if self.lingering_until is None:
            super().handle_read()
            return
        try:
            data = self.recv(LINGER_RECV_BYTES)
        except OSError:
            data = b""
        self._lingered_bytes += len(data)
        if not data or self._lingered_bytes > LINGER_BYTES:
            self.close_now()

    def handle_close(self) -> None:
        """Loop thread. After an error answer is sent, shut the write side and linger; else close."""
        if self.linger_after_close and self.lingering_until is None and self.connected:
            self.linger_after_close = False
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                self.close_now()
                return
            self.will_close = self.close_when_flushed = False
            self.lingering_until = time.time() + LINGER_S
            return
        self.close_now()

    def finish_closing(self, now: float) -> None:
        """Loop thread, sweep: end a linger past its time; a close that waits for the socket to take
        the last bytes gets CLOSING_GRACE_S (a client that does not read them), then happens as is."""
        if self.lingering_until is not None:
            if now >= self.lingering_until:
                self.close_now()
        elif self.closing_since is None:
            self.closing_since = now
        elif now - self.closing_since > CLOSING_GRACE_S:
            self.close_now()

    def close_now(self) -> None:
        """Close for good (once: `recv` may already have closed it on EOF)."""
        self.lingering_until = None
        if self._fileno is not None:
            super().handle_close()

    def busy(self) -> bool:
        """A request of this connection is being served or queued: never closed for slowness."""
        return bool(self.requests)

    def closing(self) -> bool:
        return bool(self.will_close or self.close_when_flushed or self.lingering_until is not None)

    def answer_timeout_and_close(self, error: ReplogError) -> None:
        """Loop thread, nothing in flight: drop the partial request (and its spooled body), queue a
        JSON 408 and close once it is sent."""
        with self.requests_lock:
            if self.requests:
                return
            partial: Any = self.request
            self.request = None
        if partial is not None:
            partial.close()
        status, headers, body = http_error_bytes(error)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers)
        data = f"HTTP/1.1 {status}\r\n{head}\r\n".encode("latin-1") + body
        with self.outbuf_lock:
            self.outbufs[-1].append(data)
            self.current_outbuf_count += len(data)
            self.total_outbufs_len += len(data)
        self.receiving_since, self._timed = None, None
        self.linger_after_close = True
        self.close_when_flushed = True


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

    def readable(self) -> bool:
        """Loop thread, every iteration: whether to accept. Replaces waitress's, which stops
        accepting at the limit (logging each time it does) until a connection closes by itself."""
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + self.policy.sweep_interval_s
            self.sweep(now)
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

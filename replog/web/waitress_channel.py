"""One connection under replog's policy: waitress's HTTPChannel and ErrorTask subclassed.

- A channel knows since when its current request has been arriving (`receiving_since`), for the
  request timeout that `replog.web.waitress_policy` enforces.
- Errors waitress itself produces (bad request line, oversized headers, bad Content-Length, an
  unknown Transfer-Encoding, a body over the limit) are answered in JSON `{"error", "detail"}` with
  a stable code, as every other answer, instead of waitress's text/plain.
- After such an error (and a 408) the connection closes *lingering*: the write side is shut and
  what the client still sends is read and dropped (at most `LINGER_BYTES`, for at most `LINGER_S`),
  since closing with unread input makes the kernel send a reset that destroys the answer in the
  client's receive buffer before it reads it (nginx's "lingering close").

Every waitress internal used here is listed and checked by `replog.web.waitress_adapter`.
"""

from __future__ import annotations

import http
import json
import socket
import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.task import ErrorTask
from waitress.utilities import BadRequest as WaitressBadRequest
from waitress.utilities import RequestEntityTooLarge, RequestHeaderFieldsTooLarge, ServerNotImplemented

from replog.core.errors import (
    BadRequest,
    HeadersTooLarge,
    NotImplementedByServer,
    PayloadTooLarge,
    ReplogError,
)

LINGER_S = 2.0  # after an error answer, read and drop the client's input this long at most ...
LINGER_BYTES = 64 * 1024 * 1024  # ... and this much at most, then close
LINGER_RECV_BYTES = 256 * 1024  # dropped input is read in big pieces: few loop iterations
CLOSING_GRACE_S = 5.0  # a connection closing after its last answer is closed as it is after this


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

"""A waitress server sized for blocked writers and hostile clients, that stops cleanly from any thread.

What this relies on inside waitress is in `replog.web.waitress_adapter`; here, only the policy.

Open files: every connection may hold up to `FDS_PER_CONNECTION` descriptors at once (its socket,
and a temporary file for each request body over 512 KiB that waitress spools to disk: one being
served, one being received), and the node keeps `RESERVED_FDS` for its own (log files, the loop's
trigger, connections to secondaries, temporary answer buffers). So

    connection_limit <= (RLIMIT_NOFILE - RESERVED_FDS) / FDS_PER_CONNECTION

The CLI raises the soft RLIMIT_NOFILE toward the hard limit at start (`fds_wanted`); this class
lowers `connection_limit` to what the limit in force allows, with a warning.
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

from replog.config import ServerConfig
from replog.web.waitress_adapter import WaitressServer
from replog.web.waitress_policy import ConnectionPolicy

log = logging.getLogger(__name__)

FDS_PER_CONNECTION = 3
RESERVED_FDS = 256
# A streamed answer (an unpaged GET /messages) blocks its worker while this much is unsent, and is
# written in pieces well below OUTBUF_OVERFLOW, so it stays in memory and never spills to a file.
OUTBUF_HIGH_WATERMARK = 1024 * 1024
OUTBUF_OVERFLOW = 2 * 1024 * 1024


def fds_wanted(connection_limit: int) -> int:
    """Descriptors a node needs for `connection_limit` connections and its own files."""
    return connection_limit * FDS_PER_CONNECTION + RESERVED_FDS


def fd_budget(connection_limit: int, open_files_limit: int) -> int:
    """The connection limit that `open_files_limit` descriptors allow (at least 1)."""
    return max(1, min(connection_limit, (open_files_limit - RESERVED_FDS) // FDS_PER_CONNECTION))


def open_files_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 30 if soft == resource.RLIM_INFINITY else soft


class HttpServer:
    """Runs one WSGI app. `stop()` stops accepting, lets in-flight answers go out, then closes.

    If the serving loop ever ends without `stop()` (it raised), `failed` is set and `failure` says
    why: the node cannot answer any more, so its owner must exit rather than live on deaf."""

    def __init__(self, app: Any, config: ServerConfig) -> None:
        limit = fd_budget(config.connection_limit, open_files_limit())
        if limit < config.connection_limit:
            log.warning(
                "connection_limit lowered from %d to %d: the open-files limit is %d "
                "(%d per connection + %d reserved); raise `ulimit -n`",
                config.connection_limit,
                limit,
                open_files_limit(),
                FDS_PER_CONNECTION,
                RESERVED_FDS,
            )
        self.connection_limit = limit
        self._server = WaitressServer(
            app,
            policy=ConnectionPolicy(
                request_timeout_s=config.request_timeout_s, idle_timeout_s=config.idle_timeout_s
            ),
            host=config.host,
            port=config.port,
            threads=config.total_threads,  # followers wait on threads of their own
            connection_limit=limit,
            channel_request_lookahead=1,  # lets a waiting writer notice that its client hung up
            # waitress refuses a declared Content-Length of max_request_body_size or more before
            # reading any of it (and a chunked body once it gets there), answered in JSON by the
            # adapter; our own check (read_json_body) is the second line.
            max_request_body_size=config.max_body_bytes + 1,
            outbuf_high_watermark=OUTBUF_HIGH_WATERMARK,
            outbuf_overflow=OUTBUF_OVERFLOW,
            channel_timeout=1 << 30,  # waitress's own idle sweep is replaced by the policy's
            expose_tracebacks=False,
            ident="replog",
        )
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._stopping = False
        self.failed = threading.Event()
        self.failure: BaseException | None = None

    @property
    def port(self) -> int:
        return self._server.port

    def serve(self) -> None:
        """Serve on the calling thread until `stop()`; a loop that dies sets `failed`."""
        try:
            self._server.run()
        except BaseException as exc:  # reported through `failed`; the thread ends here
            self._died(exc)
        else:
            if not self._stopping:
                self._died(RuntimeError("the HTTP server loop ended by itself"))
        finally:
            self._done.set()

    def _died(self, exc: BaseException) -> None:
        self.failure = exc
        log.error("http server loop died port=%d error=%r; this node can no longer answer", self.port, exc)
        self.failed.set()

    def start(self) -> None:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self.serve, name=f"http-{self.port}", daemon=True)
        self._thread.start()

    def stop(self, drain: Callable[[], None] = lambda: None, timeout_s: float = 3.0) -> None:
        """Stop accepting; run `drain` (answers waiting requests); flush and close everything."""
        self._stopping = True
        self._server.stop_accepting()
        drain()
        self._server.stop_workers(timeout_s)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not self._done.is_set() and self._server.unsent_bytes():
            time.sleep(0.01)  # bounded wait for answers to reach their sockets
        self._server.close_all()
        if not self._done.wait(timeout_s) and self._thread is not None:
            log.warning("http server loop did not stop within %.1fs", timeout_s)

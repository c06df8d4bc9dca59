"""A waitress server sized for blocked writers, that stops cleanly from any thread.

What this relies on inside waitress is in `replog.web.waitress_adapter`; here, only the policy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from replog.config import ServerConfig
from replog.web.waitress_adapter import WaitressServer

log = logging.getLogger(__name__)


class HttpServer:
    """Runs one WSGI app. `stop()` stops accepting, lets in-flight answers go out, then closes."""

    def __init__(self, app: Any, config: ServerConfig) -> None:
        self._server = WaitressServer(
            app,
            host=config.host,
            port=config.port,
            threads=config.threads,
            connection_limit=config.connection_limit,
            channel_request_lookahead=1,  # lets a waiting writer notice that its client hung up
            # Far above our own limit, so that our check answers oversized bodies, in JSON; waitress
            # answers only past this (in text/plain), and spools big bodies to disk, not memory.
            max_request_body_size=max(1 << 30, config.max_body_bytes * 2),
            expose_tracebacks=False,
            ident="replog",
        )
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    @property
    def port(self) -> int:
        return self._server.port

    def serve(self) -> None:
        """Serve on the calling thread until `stop()`."""
        try:
            self._server.run()
        finally:
            self._done.set()

    def start(self) -> None:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self.serve, name=f"http-{self.port}", daemon=True)
        self._thread.start()

    def stop(self, drain: Callable[[], None] = lambda: None, timeout_s: float = 3.0) -> None:
        """Stop accepting; run `drain` (answers waiting requests); flush and close everything."""
        self._server.stop_accepting()
        drain()
        self._server.stop_workers(timeout_s)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and self._server.unsent_bytes():
            time.sleep(0.01)  # bounded wait for answers to reach their sockets
        self._server.close_all()
        if not self._done.wait(timeout_s) and self._thread is not None:
            log.warning("http server loop did not stop within %.1fs", timeout_s)

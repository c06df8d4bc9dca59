"""A waitress server sized for blocked writers, that stops cleanly from any thread."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from replog.config import ServerConfig

log = logging.getLogger(__name__)

# Answers up to this size leave in one send from waitress's I/O loop, which the request thread
# wakes anyway, instead of two sends (header, then body) from the request thread. Each send gives
# up the GIL and takes it back, so this saves two hand-offs per answer: +9% appends/s unpinned and
# +25% pinned at 16 clients w=3 (A/B). 18000 was waitress's default before 2.1; the setting is
# deprecated, but present in the pinned 3.0.2.
SEND_BYTES = 18_000


class HttpServer:
    """Runs one WSGI app. `stop()` stops accepting, lets in-flight answers go out, then closes."""

    def __init__(self, app: Any, config: ServerConfig) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "send_bytes will be removed", DeprecationWarning)
            self._server: Any = create_server(
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
                send_bytes=SEND_BYTES,
            )
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

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
        server = self._server
        server.trigger.pull_trigger(lambda: wasyncore.dispatcher.close(server))
        drain()
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout_s)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and any(
            getattr(ch, "total_outbufs_len", 0) for ch in list(server._map.values())
        ):
            time.sleep(0.01)  # bounded wait for answers to reach their sockets
        # The loop may run this thunk (which closes the trigger too) before the wake-up byte is written.
        with contextlib.suppress(OSError):
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        if not self._done.wait(timeout_s) and self._thread is not None:
            log.warning("http server loop did not stop within %.1fs", timeout_s)

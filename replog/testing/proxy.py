"""A TCP proxy on one master->secondary link that can be cut: a partition of that link only.

Cutting blackholes the link the way a dropped route does: connections stay open, bytes go
nowhere, and the master learns of it only through its own timeouts, while both nodes keep running
and stay reachable by the test rig. It needs no privileges, unlike a network-namespace partition,
and both sit behind the same cut()/heal() shape (see replog.chaos.faults.LinkCut).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading

__all__ = ["LinkProxy"]

log = logging.getLogger(__name__)

_POLL_S = 0.2
_CHUNK = 64 * 1024


class _Pipe:
    """One proxied connection: two sockets and the flag saying whether bytes are dropped."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None, blackholed: bool) -> None:
        self.client = client
        self.upstream = upstream
        self.blackholed = blackholed
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


class LinkProxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<target_port> until cut."""

    def __init__(self, target_port: int, name: str, listen_port: int = 0) -> None:
        self.name = name
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", listen_port))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pipes: set[_Pipe] = set()
        self._cut = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"proxy-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            for pipe in self._pipes:
                pipe.blackholed = True
        log.info("link cut link=%s", self.name)

    def heal(self) -> None:
        """Blackholed connections are closed (their requests are long lost); new ones forward."""
        with self._lock:
            self._cut = False
            dead = [p for p in self._pipes if p.blackholed]
        for pipe in dead:
            pipe.close()
        log.info("link healed link=%s dropped_connections=%d", self.name, len(dead))

    def close(self) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            pipes = list(self._pipes)
        for pipe in pipes:
            pipe.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                readable, _, _ = select.select([self._listener], [], [], _POLL_S)
                if not readable:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            cut = self._cut
        upstream: socket.socket | None = None
        if not cut:
            try:
                upstream = socket.create_connection(self._target, timeout=1.0)
                upstream.settimeout(None)
            except OSError:
                client.close()  # the secondary is down: look like it
                return
        pipe = _Pipe(client, upstream, blackholed=cut)
        with self._lock:
            self._pipes.add(pipe)
        try:
            if upstream is None:
                self._drain(pipe)
            else:
                back = threading.Thread(target=self._pump, args=(pipe, upstream, client), daemon=True)
                back.start()
                self._pump(pipe, client, upstream)
                back.join()
        finally:
            pipe.close()
            with self._lock:
                self._pipes.discard(pipe)

    def _drain(self, pipe: _Pipe) -> None:
        """A connection opened during a cut: read and drop until healed or hung up."""
        while not pipe.closed.is_set() and not self._stopping.is_set():
            try:
                readable, _, _ = select.select([pipe.client], [], [], _POLL_S)
                if readable and not pipe.client.recv(_CHUNK):
                    return
            except (OSError, ValueError):
                return

    def _pump(self, pipe: _Pipe, src: socket.socket, dst: socket.socket) -> None:
        while not pipe.closed.is_set() and not self._stopping.is_set():
            try:
                readable, _, _ = select.select([src], [], [], _POLL_S)
                if not readable:
                    continue
                data = src.recv(_CHUNK)
                if not data:
                    pipe.close()
                    return
                if not pipe.blackholed:
                    dst.sendall(data)
            except (OSError, ValueError):
                pipe.close()
                return

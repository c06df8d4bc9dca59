"""Every use replog makes of waitress beyond its documented API, in one place, checked at start.

waitress documents `create_server(app, **settings)`, `run()` and the settings. To stop from any
thread while answers already written still reach their sockets, and to answer small requests in
one send, replog also relies on internals:

- `server.trigger.pull_trigger(thunk)`: run a step of the stop on the I/O loop's own thread;
- `wasyncore.dispatcher.close(server)`: close only the listening socket (`server.close()` would
  close the trigger too, which the later steps still need);
- `server.task_dispatcher.shutdown(cancel_pending, timeout)`: stop the worker threads;
- `server._map` and each channel's `total_outbufs_len`: bytes written but not yet sent;
- `wasyncore.close_all(map)`: close every channel and the trigger, which ends `run()`;
- the deprecated `send_bytes` setting (see `SEND_BYTES`);
- to bound how long a connection may take and keep room for new ones
  (`replog.web.waitress_policy`): `TcpWSGIServer` built from an `Adjustments` and subclassed
  (`readable` replaced, `maintenance`, `handle_accept`, `active_channels`, `accepting`,
  `channel_class`); and, in `replog.web.waitress_channel`, `HTTPChannel` subclassed (`received`,
  `request`, `requests`, `requests_lock`, `outbufs`, `outbuf_lock`, `current_outbuf_count`,
  `last_activity`, `creation_time`, `will_close`, `close_when_flushed`, `error_task_class`, the
  dispatcher's `_fileno`), a parser's `close()`, and `ErrorTask` subclassed (`execute` with
  `request.error`, `status`, `response_headers`, `set_close_on_finish`, `content_length`, `write`)
  to answer waitress's own errors (`waitress.utilities`) in JSON.

`WaitressServer` checks each of them when it is built and fails with `WaitressChanged`, naming
what is missing, rather than misbehaving at the first stop. The versions they were checked against
are capped in pyproject.toml and requirements.txt; `tests/web/test_waitress_adapter.py` holds the
behaviour (one send from the loop, the clean stop) to them, `tests/web/test_connection_policy.py`
the policy's.

The loop runs one iteration at a time with `select()` while every descriptor it watches is below
FD_SETSIZE (1024), and with `poll()` once one is not: `select()` raises "filedescriptor out of
range" past 1023 and the loop died there, while waitress's `poll()` iteration builds and fills a
new poll object every time, which cost ~10% of the master's CPU per append at 16 clients.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import ClientDisconnected, HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer, TcpWSGIServer
from waitress.task import ErrorTask, Task

from replog.web.waitress_policy import ConnectionPolicy, ReplogServer

CHECKED_VERSIONS = "3.0.2"  # the waitress releases these internals were read in and tested with

# Answers up to this size leave in one send from waitress's I/O loop, which the request thread
# wakes anyway, instead of two sends (header, then body) from the request thread. Each send gives
# up the GIL and takes it back, so this saves two hand-offs per answer: +9% appends/s unpinned and
# +25% pinned at 16 clients w=3 (A/B). 18000 was waitress's default before 2.1; the setting is
# deprecated since then, but still honoured in 3.0.
SEND_BYTES = 18_000


FD_SETSIZE = 1024  # select() watches descriptors 0..1023 only


def response_channel(environ: dict[str, Any]) -> Any | None:
    """The waitress channel answering this request (None outside waitress): the owner of the bound
    method waitress puts in `waitress.client_disconnected`."""
    return getattr(environ.get("waitress.client_disconnected"), "__self__", None)


def send_chunk(channel: Any, data: bytes) -> bool:
    """Any thread, while the request's own worker is parked inside its streamed answer (after its
    first chunk, which sent the headers): write `data` as one chunk of the chunked answer and send
    it now. False if the client is gone. Uses `write_soon` (under `outbuf_lock`) and `_flush_some`,
    as `flush_response` does."""
    if not channel.connected:
        return False
    try:
        channel.write_soon(b"%X\r\n%b\r\n" % (len(data), data))
    except ClientDisconnected:
        return False
    with channel.outbuf_lock:
        if channel.total_outbufs_len:
            _, failed = channel._flush_exception(channel._flush_some, do_close=False)
            if failed or channel.total_outbufs_len:
                channel.server.pull_trigger()
    return bool(channel.connected)


def unsent_bytes(channel: Any) -> int:
    """Bytes written to this channel and not yet taken by its socket (a slow reader's backlog)."""
    return int(channel.total_outbufs_len)


def flush_response(environ: dict[str, Any]) -> bool:
    """Request thread, inside a streamed answer: send what the app has written so far now. While
    a request runs, waitress sends its output only once `send_bytes` of it gather (or the answer
    ends), which would hold an event stream's small events back. Uses the channel behind waitress's
    `waitress.client_disconnected` (its bound method), its `outbuf_lock` and `_flush_some`, as
    waitress's own `write_soon` does for a large write. False if the client is gone."""
    check = environ.get("waitress.client_disconnected")
    channel = getattr(check, "__self__", None)
    if channel is None:
        return True  # not under waitress (an in-process test client): nothing is held back
    if not channel.connected:
        return False
    with channel.outbuf_lock:
        if channel.total_outbufs_len:
            _, failed = channel._flush_exception(channel._flush_some, do_close=False)
            if failed or channel.total_outbufs_len:
                channel.server.pull_trigger()  # the loop sends the rest, or closes
    return bool(channel.connected)


def loop_once(timeout_s: float, channels: dict[int, Any]) -> None:
    """One iteration of the I/O loop: `select()` while every watched descriptor fits its bitmap,
    else `poll()` (see the module's docstring). Loop thread only: channels are added and removed
    there, so the choice holds for the iteration."""
    if channels and max(channels) >= FD_SETSIZE:
        wasyncore.poll2(timeout_s, channels)
    else:
        wasyncore.poll(timeout_s, channels)


class WaitressChanged(RuntimeError):
    """The installed waitress lacks, or has changed, an internal this adapter relies on."""

    def __init__(self, what: str, purpose: str) -> None:
        super().__init__(
            f"waitress {version('waitress')} changed: {what}; replog.web.waitress_adapter relies on it "
            f"to {purpose}. It was checked against waitress {CHECKED_VERSIONS}: install that version, "
            f"or update the adapter and its test"
        )


def _require(condition: Callable[[], bool], what: str, purpose: str) -> None:
    try:
        ok = condition()
    except (AttributeError, TypeError, ValueError):
        ok = False
    if not ok:
        raise WaitressChanged(what, purpose)


def _has_params(function: Callable[..., Any], *names: str) -> bool:
    return set(names) <= set(inspect.signature(function).parameters)


def check_internals(server: Any, send_bytes: int) -> None:
    """Raise `WaitressChanged` unless every internal used below is there with the expected shape."""
    _require(lambda: int(server.effective_port) > 0, "server.effective_port is gone", "know its port")
    _require(
        lambda: _has_params(server.trigger.pull_trigger, "thunk"),
        "server.trigger.pull_trigger(thunk) is gone",
        "run steps of a stop on the I/O loop's thread",
    )
    _require(
        lambda: callable(wasyncore.dispatcher.close),
        "wasyncore.dispatcher.close is gone",
        "close the listening socket alone",
    )
    _require(
        lambda: _has_params(server.task_dispatcher.shutdown, "cancel_pending", "timeout"),
        "server.task_dispatcher.shutdown(cancel_pending, timeout) is gone",
        "stop the worker threads",
    )
    _require(lambda: isinstance(server._map, dict), "server._map is not a dict", "find the open channels")
    _require(
        lambda: isinstance(server.channel_class.total_outbufs_len, int),
        "server.channel_class.total_outbufs_len is gone",
        "wait until written answers reach their sockets",
    )
    _require(
        lambda: _has_params(wasyncore.close_all, "map"),
        "wasyncore.close_all(map) is gone",
        "close every channel and end the loop",
    )
    _require(
        lambda: server.adj.send_bytes == send_bytes,
        "the send_bytes setting no longer takes effect",
        "send small answers in one send from the I/O loop",
    )
    _require(
        lambda: (
            _has_params(wasyncore.poll, "timeout", "map") and _has_params(wasyncore.poll2, "timeout", "map")
        ),
        "wasyncore.poll(timeout, map) or poll2(timeout, map) is gone",
        "run one iteration of the loop with select() or poll()",
    )
    _require(
        lambda: _in_source(type(server).run, "asyncore.loop", "_map", "task_dispatcher.shutdown"),
        "the server's run() no longer just loops over its map",
        "run that loop itself, choosing select() or poll() per iteration",
    )
    _require(
        lambda: all(
            hasattr(server.channel_class, name)
            for name in (
                "check_client_disconnected", "_flush_exception", "_flush_some", "connected", "write_soon"
            )
        ),
        "HTTPChannel.check_client_disconnected, _flush_exception or _flush_some is gone",
        "send an event stream's events as they are written (flush_response)",
    )
    check_policy_internals(server)


def _in_source(function: Callable[..., Any], *names: str) -> bool:
    source = inspect.getsource(function)
    return all(name in source for name in names)


def check_policy_internals(server: Any) -> None:
    """What `replog.web.waitress_policy` overrides or reads, with the shape it expects."""
    purpose = "bound request and idle times, keep room for new connections, answer errors in JSON"
    _require(lambda: _has_params(TcpWSGIServer.readable, "self"), "TcpWSGIServer.readable is gone", purpose)
    _require(
        lambda: (
            _has_params(TcpWSGIServer.maintenance, "now")
            and _in_source(
                TcpWSGIServer.readable, "self.maintenance(now)", "self.accepting", "connection_limit"
            )
        ),
        "TcpWSGIServer.readable no longer decides accepting from accepting, connection_limit and "
        "maintenance(now) alone",
        purpose,
    )
    _require(lambda: isinstance(server.active_channels, dict), "server.active_channels is gone", purpose)
    _require(
        lambda: _in_source(BaseWSGIServer.handle_accept, "self.accept()", "self.channel_class("),
        "BaseWSGIServer.handle_accept no longer accepts one connection into a channel",
        purpose,
    )
    _require(lambda: _has_params(HTTPChannel.received, "data"), "HTTPChannel.received(data) is gone", purpose)
    for name in ("request", "last_activity", "will_close", "close_when_flushed", "current_outbuf_count"):
        _require(lambda n=name: hasattr(HTTPChannel, n), f"HTTPChannel.{name} is gone", purpose)  # type: ignore[misc]
    for name in ("requests", "requests_lock", "outbufs", "outbuf_lock", "creation_time"):
        _require(
            lambda n=name: _in_source(HTTPChannel.__init__, f"self.{n} ="),  # type: ignore[misc]
            f"HTTPChannel.__init__ no longer sets self.{name}",
            purpose,
        )
    _require(
        lambda: (
            _in_source(wasyncore.dispatcher.set_socket, "self._fileno =")
            and _in_source(wasyncore.dispatcher.del_channel, "self._fileno = None")
        ),
        "wasyncore.dispatcher._fileno is gone",
        purpose,
    )
    _require(
        lambda: HTTPChannel.error_task_class is ErrorTask, "HTTPChannel.error_task_class changed", purpose
    )
    _require(lambda: callable(HTTPRequestParser.close), "HTTPRequestParser.close is gone", purpose)
    _require(
        lambda: (
            _in_source(
                ErrorTask.execute,
                "self.request.error",
                "self.status",
                "self.response_headers",
                "self.set_close_on_finish()",
                "self.content_length",
                "self.write(",
            )
            and all(callable(getattr(Task, m)) for m in ("set_close_on_finish", "write"))
        ),
        "ErrorTask.execute no longer renders request.error through status/response_headers/write",
        purpose,
    )


class WaitressServer:
    """One waitress server; each internal it uses sits behind a method named for its purpose.

    `run()` runs on the serving thread; every other method may be called from any thread.
    """

    def __init__(
        self,
        app: Any,
        *,
        policy: ConnectionPolicy | None = None,
        send_bytes: int = SEND_BYTES,
        **settings: Any,
    ) -> None:
        """`settings` are waitress's documented ones (threads, connection_limit, ...); one listen
        address only. `policy`: time limits of a connection (see `replog.web.waitress_policy`)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "send_bytes will be removed", DeprecationWarning)
            try:
                adj = Adjustments(send_bytes=send_bytes, **settings)
            except ValueError as exc:
                if "send_bytes" not in str(exc):
                    raise
                raise WaitressChanged(
                    "the send_bytes setting is refused", "send small answers in one send from the I/O loop"
                ) from exc
        if len(adj.listen) != 1:
            raise ValueError(f"listen on exactly one address; {settings.get('host')!r} gives {adj.listen}")
        self._server: Any = ReplogServer(app, adj=adj, policy=policy or ConnectionPolicy())
        try:
            check_internals(self._server, send_bytes)
        except WaitressChanged:
            with contextlib.suppress(Exception):  # best effort: the node will not start anyway
                self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=1.0)
            self._server.close()  # the listening socket and the trigger
            raise

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def run(self) -> None:
        """Serve on the calling thread until `close_all()` has run: waitress's own `run()`, with
        `loop_once` for each iteration."""
        server = self._server
        try:
            while server._map:
                server.before_iteration()
                loop_once(server.adj.asyncore_loop_timeout, server._map)
        except (SystemExit, KeyboardInterrupt):
            server.task_dispatcher.shutdown()

    def stop_accepting(self) -> None:
        """Close the listening socket (on the loop's thread); open connections carry on."""
        server = self._server
        server.trigger.pull_trigger(lambda: wasyncore.dispatcher.close(server))

    def stop_workers(self, timeout_s: float) -> None:
        """Cancel queued requests and wait up to timeout_s for the worker threads to finish theirs."""
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout_s)

    def unsent_bytes(self) -> int:
        """Bytes of answers written by workers and not yet sent to their sockets."""
        channel = self._server.channel_class
        return sum(c.total_outbufs_len for c in list(self._server._map.values()) if isinstance(c, channel))

    def close_all(self) -> None:
        """Close every connection and the trigger (on the loop's thread), which ends `run()`."""
        server = self._server
        # The loop may run this thunk (which closes the trigger too) before the wake-up byte is written.
        with contextlib.suppress(OSError):
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))

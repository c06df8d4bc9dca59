"""Following the log: `GET /stream` (Server-Sent Events), and the waits of `/entries?wait=` and
`min_seq`, on every node (a secondary shows its gap-free prefix, as every read does).

A follower holds a waitress thread while it waits, on the node's `SeqWatch` (no polling). Followers
have their own cap (`ServerConfig.max_followers`) and their own threads on top of the writers' and
readers' (`ServerConfig.total_threads`), so however many follow, appends, reads and /health keep
theirs; past the cap a follower gets 503 `overloaded` with Retry-After.

The stream: `retry:` first, then one event per entry, in seq order, each once:

    id: 42
    data: {"seq": 42, "message": "...", "stored_at": 1764612345.1}

and a comment line (`: keep-alive`) after `follow_keepalive_s` without entries, so proxies and
clients see the connection alive. It starts after `Last-Event-ID` when the client sends one (a
browser's EventSource reconnects to the same URL, so the header wins over `from_seq`), else at
`from_seq` (default 1). It has no lifetime bound: it ends when the client goes or the node stops.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import bottle

from replog.core.errors import BadRequest, MinSeqTimeout, Overloaded
from replog.storage.store import Store
from replog.storage.watch import SeqWatch
from replog.web.broadcast import Broadcaster, Stream
from replog.web.common import json_errors, query_int
from replog.web.waitress_adapter import flush_response, response_channel

MAX_WAIT_S = 60.0  # the longest `wait` a read may ask for
DEFAULT_MIN_SEQ_WAIT_S = 5.0  # how long `min_seq` waits when the read gives no `wait`
STREAM_PAGE_ENTRIES = 1000  # entries read from the store per step of a stream
# Message bytes per page (at least one entry). With `broadcast.MAX_UNSENT_BYTES`, what bounds a
# stream's memory: its unread backlog stays under ~64 KiB + one page (~100 KiB of JSON for 64 KiB
# of ASCII messages; a single larger message is sent whole), ~45 MB for 256 slow followers.
STREAM_PAGE_BYTES = 64 * 1024
RETRY_MS = 1000  # the reconnection delay a stream asks of an EventSource
PAGES_CACHED = 8  # encoded stream pages kept for followers at the same seq


class Followers:
    """The node's followers: their cap, the watch they wait on, and the stream's keep-alive."""

    def __init__(self, store: Store, watch: SeqWatch, max_followers: int, keepalive_s: float) -> None:
        self.store, self.watch = store, watch
        self.keepalive_s = keepalive_s
        self.max_followers = max_followers
        self._slots = threading.BoundedSemaphore(max(1, max_followers))
        self._lock = threading.Lock()
        self.active = 0
        # Followers woken together mostly stand at the same seq: the first reads and encodes the
        # page, the others send the same bytes. (first seq, entries ever rolled back) -> (events,
        # last seq), the newest few: a rollback (failover) may give a seq another entry.
        self._pages: dict[tuple[int, int], tuple[bytes, int]] = {}
        self.broadcaster = Broadcaster(self)

    def close(self) -> None:
        """The node is stopping: wake every waiting follower and end every stream."""
        self.watch.close()
        self.broadcaster.close()

    def events_from(self, first_seq: int) -> tuple[bytes, int] | None:
        """The stream's bytes for the entries from first_seq (a page), and the last seq in them;
        None if the node holds none yet. A page shorter than what is stored by now is still right:
        its reader asks again from the seq after it."""
        key = (first_seq, self.store.rolled_back_entries)
        with self._lock:
            cached = self._pages.get(key)
        if cached is not None:
            return cached
        page = self.store.read(first_seq, STREAM_PAGE_ENTRIES, STREAM_PAGE_BYTES)
        if not page:
            return None
        text = b"".join(
            event(e.seq, {"seq": e.seq, "message": e.message, "stored_at": e.stored_at}) for e in page
        )
        built = (text, page[-1].seq)
        with self._lock:
            self._pages[key] = built
            while len(self._pages) > PAGES_CACHED:
                del self._pages[next(iter(self._pages))]
        return built

    def take(self) -> None:
        """Take a follower slot, or 503 `overloaded` at once."""
        if self.max_followers < 1 or not self._slots.acquire(blocking=False):
            raise Overloaded(
                f"{self.max_followers} followers already wait on this node; retry later",
                retry_after_s=1,
            )
        with self._lock:
            self.active += 1

    def give_back(self) -> None:
        with self._lock:
            self.active -= 1
        self._slots.release()

    @contextmanager
    def slot(self) -> Iterator[None]:
        self.take()
        try:
            yield
        finally:
            self.give_back()

    def wait_for(self, seq: int, wait_s: float) -> bool:
        """Request thread: wait (in a follower slot) until the node holds seq; True if it does."""
        if self.store.stored_seq >= seq:
            return True
        if wait_s <= 0:
            return False
        with self.slot():
            return self.watch.wait_for(seq, wait_s)

    def require(self, min_seq: int | None, wait_s: float | None) -> None:
        """Read-your-writes: wait until the node holds min_seq (for `wait`, or the default), else 504."""
        if min_seq is None:
            return
        limit = DEFAULT_MIN_SEQ_WAIT_S if wait_s is None else wait_s
        if not self.wait_for(min_seq, limit):
            raise MinSeqTimeout(
                f"this node did not hold seq {min_seq} within {limit:g} s",
                min_seq=min_seq,
                stored_seq=self.store.stored_seq,
            )


def query_wait() -> float | None:
    """The `wait` query parameter: seconds, 0..MAX_WAIT_S; None when not given."""
    raw = bottle.request.query.get("wait")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"query parameter 'wait' must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_WAIT_S:
        raise BadRequest(f"query parameter 'wait' must be within 0..{MAX_WAIT_S:g} seconds, got {raw!r}")
    return value


def stream_start() -> int:
    """Where a stream starts: after `Last-Event-ID` if sent (it wins), else at `from_seq`."""
    last_id = bottle.request.get_header("Last-Event-ID")
    if last_id is not None and last_id.strip() != "":
        text = last_id.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            raise BadRequest(f"Last-Event-ID must be a seq (a non-negative integer), got {last_id[:40]!r}")
        return int(text) + 1
    start = query_int("from_seq", 1, 1)
    assert start is not None
    return start


def event(entry_seq: int, body: dict[str, Any]) -> bytes:
    return f"id: {entry_seq}\ndata: {json.dumps(body)}\n\n".encode()


def stream(followers: Followers, first_seq: int, environ: dict[str, Any]) -> Iterator[bytes]:
    """The event stream from first_seq on. Runs on the request's worker thread, holding a
    follower slot taken by the caller, which it gives back however it ends (`StreamBody.close`).
    Under waitress the node's `Broadcaster` pushes the events and this thread only parks (see
    `replog.web.broadcast`); elsewhere it pushes them itself."""
    yield f"retry: {RETRY_MS}\n\n".encode()
    channel = response_channel(environ)
    if channel is None:
        yield from _stream_here(followers, first_seq, environ)
        return
    # waitress has written the headers and the retry line: from here on, raw chunks are ours
    pushed = Stream(channel, first_seq)
    with pushed.lock:
        flush_response(environ)
    followers.broadcaster.add(pushed)
    try:
        while not pushed.ended.wait(followers.keepalive_s) and not followers.watch.closed:
            with pushed.lock:
                if not pushed.write(b": keep-alive\n\n"):
                    break
    finally:
        with pushed.lock:
            pushed.ended.set()
        followers.broadcaster.remove(pushed)


def _stream_here(followers: Followers, first_seq: int, environ: dict[str, Any]) -> Iterator[bytes]:
    """The stream written by its own thread, woken by the watch: outside waitress only."""
    watch = followers.watch
    next_seq = first_seq
    while not watch.closed:
        if not flush_response(environ):
            return  # the client is gone
        events = followers.events_from(next_seq)
        if events is not None:
            yield events[0]
            next_seq = events[1] + 1
            continue
        if not watch.wait_for(next_seq, followers.keepalive_s) and not watch.closed:
            yield b": keep-alive\n\n"


class StreamBody:
    """The WSGI body of a stream: gives the follower slot back exactly once, whether the stream
    ended, the client went, or the server closed it before it began."""

    def __init__(self, followers: Followers, parts: Iterator[bytes]) -> None:
        self._followers, self._parts = followers, parts
        self._open = True

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._parts)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._open:
            self._open = False
            close = getattr(self._parts, "close", None)
            if close is not None:
                close()
            self._followers.give_back()


def add_follow_routes(app: bottle.Bottle, followers: Followers) -> None:
    """`GET /stream`: entries pushed as Server-Sent Events (see the module)."""
    @app.get("/stream")
    @json_errors
    def get_stream() -> Any:
        first_seq = stream_start()
        followers.take()
        response = bottle.response
        response.content_type = "text/event-stream; charset=utf-8"
        response.set_header("Cache-Control", "no-cache")
        response.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer the stream
        return StreamBody(followers, stream(followers, first_seq, bottle.request.environ))

"""`GET /messages` and `GET /entries`, in bounded memory however long the log.

An answer is built page by page from the store (`PAGE_BYTES` of messages per read, no lock held
between reads). One that fits in `SMALL_ANSWER_BYTES` goes out in one piece, with a Content-Length;
a longer one is streamed (chunked) from a generator: waitress's worker writes a page, and blocks
while more than its high watermark is unsent (`replog.web.server.OUTBUF_HIGH_WATERMARK`), so memory
stays at a few pages per reader, and waitress's I/O loop, which sends, is never blocked. The log
an answer shows is the prefix stored when it started.

A streamed answer holds its worker thread for as long as its client takes to read it, so at most
`max_streams` of them run at once (half the threads reserved for reads and /health); past that a
large read gets 503 `overloaded` with Retry-After. A client that stops reading is dropped after
the idle timeout (`replog.web.waitress_policy`), which frees its thread.

The body is the one Bottle wrote for a dict (`json.dumps`' defaults), byte for byte. Control
records (cluster mode's epoch-start entries) take a seq: `/messages` never shows them (its
`offset` and `total` count seqs, so a page may hold fewer messages than its `limit` in cluster
mode; static mode writes no control records), `/entries` shows them with `"kind": "epoch_start"`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import bottle

from replog.core.entry import Kind
from replog.core.errors import Overloaded
from replog.core.wire import Entry
from replog.storage.store import Store
from replog.web.common import MAX_PAGE, json_errors, query_int
from replog.web.follow import Followers, add_follow_routes, query_wait

DEFAULT_ENTRIES_LIMIT = 1000
PAGE_BYTES = 128 * 1024  # message bytes per store read, and about per chunk written
PAGE_ENTRIES = 10_000  # entries per store read at most
SMALL_ANSWER_BYTES = 256 * 1024  # up to this, an answer goes out whole, not streamed

Encode = Callable[[list[Entry]], str]


def pages(store: Store, first_seq: int, count: int, encode: Encode) -> Iterator[bytes]:
    """Entries first_seq.. (at most count) as the inside of a JSON array, one chunk per store read."""
    seq, end = first_seq, first_seq + count
    separator = b""
    while seq < end:
        page = store.read(seq, min(PAGE_ENTRIES, end - seq), PAGE_BYTES)
        if not page:
            return
        inside = encode(page)[1:-1]
        if inside:  # a page of control records only shows nothing
            yield separator + inside.encode()
            separator = b", "
        seq = page[-1].seq + 1


def messages_json(page: list[Entry]) -> str:
    """Control records (cluster mode's epoch-start) take a seq but are never shown here."""
    return json.dumps([e.message for e in page if e.visible])


def entries_json(page: list[Entry]) -> str:
    """Each entry whole (a master behind its secondaries learns its lost entries from this: issue 11
    C8): `kind` only for control records, `key` only when the client gave one."""
    return json.dumps([_entry_dict(e) for e in page])


def _entry_dict(entry: Entry) -> dict[str, object]:
    answer: dict[str, object] = {
        "seq": entry.seq,
        "message": entry.message,
        "stored_at": entry.stored_at,
        "epoch": entry.epoch,
    }
    if entry.kind is not Kind.MESSAGE:
        answer["kind"] = entry.kind.name.lower()
    if entry.key is not None:
        answer["key"] = entry.key
    return answer


class Answers:
    """Builds answers whole when small and streams them when not, within `max_streams` at once."""

    def __init__(self, max_streams: int) -> None:
        self._streams = threading.BoundedSemaphore(max(1, max_streams))

    def answer(
        self, head: bytes, parts: Iterator[bytes], tail: Callable[[], bytes]
    ) -> bytes | Iterator[bytes]:
        """`head` + parts + `tail()` (called once the parts are written, so it may report what they
        showed). Request thread: reads until the answer proves large, then hands over a generator."""
        bottle.response.content_type = "application/json"
        taken, size = [head], len(head)
        for part in parts:
            taken.append(part)
            size += len(part)
            if size > SMALL_ANSWER_BYTES:
                break
        else:
            return b"".join([*taken, tail()])
        if not self._streams.acquire(blocking=False):
            raise Overloaded("too many large reads are being streamed; retry later, or page", retry_after_s=1)
        return self._stream(taken, parts, tail)

    def _stream(
        self, taken: list[bytes], parts: Iterator[bytes], tail: Callable[[], bytes]
    ) -> Iterator[bytes]:
        """Worker thread, while waitress writes the answer; the slot is freed however it ends (the
        client hanging up closes the generator)."""
        try:
            yield b"".join(taken)
            taken.clear()
            yield from parts
            yield tail()
        finally:
            self._streams.release()


def add_read_routes(app: bottle.Bottle, store: Store, max_streams: int, followers: Followers) -> None:
    """`GET /messages` (the visible log, optionally paged), `GET /entries` (with seqs; `wait` makes
    it a long poll) and `GET /stream` (see `replog.web.follow`). Both reads take `min_seq`: wait
    (for `wait` seconds, or 5) until this node holds that seq, else 504 `min_seq_timeout`."""
    answers = Answers(max_streams)
    add_follow_routes(app, followers)

    @app.get("/messages")
    @json_errors
    def messages() -> bytes | Iterator[bytes]:
        followers.require(query_int("min_seq", None, 1), query_wait())
        offset = query_int("offset", 0, 0)
        limit = query_int("limit", None, 1)
        assert offset is not None
        total = store.stored_seq
        count = total if limit is None else min(limit, MAX_PAGE)
        parts = pages(store, offset + 1, min(count, max(0, total - offset)), messages_json)
        if limit is None and offset == 0:
            return answers.answer(b'{"messages": [', parts, lambda: b"]}")
        paged = f'], "offset": {offset}, "total": {total}}}'.encode()
        return answers.answer(b'{"messages": [', parts, lambda: paged)

    @app.get("/entries")
    @json_errors
    def entries() -> bytes | Iterator[bytes]:
        from_seq = query_int("from_seq", 1, 1)
        limit = query_int("limit", DEFAULT_ENTRIES_LIMIT, 1)
        assert from_seq is not None and limit is not None
        wait_s = query_wait()
        followers.require(query_int("min_seq", None, 1), wait_s)
        if wait_s:  # a long poll: answer as soon as from_seq is held, or empty after wait_s
            followers.wait_for(from_seq, wait_s)
        parts = pages(store, from_seq, min(limit, MAX_PAGE), entries_json)

        def tail() -> bytes:  # read last: at least the last seq the answer shows
            return f'], "stored_seq": {store.stored_seq}}}'.encode()

        return answers.answer(b'{"entries": [', parts, tail)

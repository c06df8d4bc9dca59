"""One thread per node pushes new entries to every `GET /stream` follower.

Each stream's own worker thread only starts its answer (the headers and the `retry:` line) and then
parks: it wakes only for a keep-alive or to end. The node's `Broadcaster` thread waits on the
`SeqWatch` and, for each stream, writes the events it lacks into its connection and sends them
(`replog.web.waitress_adapter.send_chunk`). So an append wakes one thread, not one per follower;
followers at the same seq share one encoded page (`Followers.events_from`), and each costs one
send per round. Measured with bench/follow_bench.py (README, Following the log).

Bounded: a round pushes at most one page (`STREAM_PAGE_ENTRIES`, `STREAM_PAGE_BYTES`) per stream;
a stream whose client has more than `MAX_UNSENT_BYTES` not yet read is skipped until it drains
(the connection policy closes it if its client stops reading for the idle timeout), so a slow
reader never blocks the thread and holds ~100-160 KiB at most; and rounds are spaced by
`streams / PUSHES_PER_S` seconds, so that with many followers the pushes take a bounded share of
the node (a follower's delay grows instead: up to 50 ms with 200).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from replog.storage.watch import COALESCE_S
from replog.web.waitress_adapter import send_chunk, unsent_bytes

log = logging.getLogger(__name__)

MAX_UNSENT_BYTES = 64 * 1024  # a stream's unread backlog past which it is skipped for a round
PUSHES_PER_S = 4_000.0  # stream pushes a second, all streams together, at most (about)
IDLE_WAIT_S = 1.0  # how long one wait for a new entry lasts before the streams are looked at again
SLOW_READERS_PAUSE_S = 0.05  # after a round that could push nothing (every stream behind is full)


class Stream:
    """One follower's connection: where it stands, and a lock so that its own thread (keep-alives,
    the end) and the broadcaster never write at once."""

    def __init__(self, channel: Any, next_seq: int) -> None:
        self.channel = channel
        self.next_seq = next_seq
        self.lock = threading.Lock()
        self.ended = threading.Event()  # set by whoever finds the stream over; its thread returns

    def write(self, data: bytes) -> bool:
        """Under `lock`: one chunk, sent now; False (and ended) if the client is gone."""
        if self.ended.is_set():
            return False
        if send_chunk(self.channel, data):
            return True
        self.ended.set()
        return False


class Broadcaster:
    """The node's pushing thread, started with the first stream and ended by `close`."""

    def __init__(self, followers: Any) -> None:  # a `replog.web.follow.Followers`
        self._followers = followers
        self._lock = threading.Lock()
        self._streams: set[Stream] = set()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    def add(self, stream: Stream) -> None:
        with self._lock:
            self._streams.add(stream)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="follow-broadcast", daemon=True)
                self._thread.start()

    def remove(self, stream: Stream) -> None:
        with self._lock:
            self._streams.discard(stream)

    def _run(self) -> None:
        watch = self._followers.watch
        while not watch.closed:
            with self._lock:
                streams = list(self._streams)
            if not streams:
                watch.wait_for(watch.stored_seq + 1, IDLE_WAIT_S)
                continue
            behind = min(s.next_seq for s in streams)
            if not watch.wait_for(behind, IDLE_WAIT_S):
                continue
            started = time.monotonic()
            pushed = 0
            try:
                pushed = self._round(streams)
            except Exception:  # a bug here must not silence every stream for good
                log.exception("follow broadcast round failed")
            self.rounds += 1
            # Nothing pushed: every stream behind is a slow reader; look again later, not at once.
            least_s = len(streams) / PUSHES_PER_S if pushed else SLOW_READERS_PAUSE_S
            pause_s = max(COALESCE_S, least_s) - (time.monotonic() - started)
            if pause_s > 0:
                watch.pause(pause_s)

    def close(self) -> None:
        """The node is stopping (its watch is closed): end every stream, freeing its thread."""
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.ended.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _round(self, streams: list[Stream]) -> int:
        """Push each stream the page it lacks; return how many were pushed."""
        stored = self._followers.store.stored_seq
        pushed = 0
        for stream in streams:
            if stream.next_seq > stored or stream.ended.is_set():
                continue
            if unsent_bytes(stream.channel) > MAX_UNSENT_BYTES:
                continue  # a slow reader: its turn comes once it has read
            events = self._followers.events_from(stream.next_seq)
            if events is None:
                continue
            with stream.lock:
                if stream.write(events[0]):
                    stream.next_seq = events[1] + 1
                    pushed += 1
        return pushed

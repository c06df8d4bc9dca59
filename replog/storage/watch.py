"""Wakes the readers that wait for the log to grow (followers: long-poll, streams, `min_seq`).

One condition for all of them, owned by the store side: the store's stored-seq listener `poke`s
it (on the flusher thread, or a secondary's applying thread), and waiters block on it, never
polling. Two rules keep followers from taxing appends:

- `poke` costs the store's thread one attribute read when nobody waits, and at most one
  `Event.set` when someone does: it never wakes the followers itself;
- a dispatcher thread wakes them all (`notify_all`) at most once per `coalesce_s`, and, with many
  waiting, at most `FOLLOWER_WAKES_PER_S / waiting` times a second: the followers together wake
  about `FOLLOWER_WAKES_PER_S` times a second at most, however many there are and however fast
  entries come (each then reads every entry stored meanwhile in one page). A follower's delay is
  the price: up to `waiting / FOLLOWER_WAKES_PER_S` seconds (0.1 s with 200 waiting), 2 ms with a
  few. Measured in bench/follow_bench.py: without the budget, 200 followers took ~88% of the
  master's appends per second.

The dispatcher starts with the first waiter; `close` (at the node's stop) wakes every waiter for
good, so a stream ends and frees its thread instead of holding the server's stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

COALESCE_S = 0.002  # at most one wake-up of the followers per this many seconds (500/s)
FOLLOWER_WAKES_PER_S = 2000.0  # follower wake-ups a second, all followers together, at most


class SeqWatch:
    """Waits for `stored()` to reach a seq. Thread-safe; `poke` may be called from any thread."""

    def __init__(
        self,
        stored: Callable[[], int],
        *,
        coalesce_s: float = COALESCE_S,
        wakes_per_s: float = FOLLOWER_WAKES_PER_S,
        name: str = "",
    ) -> None:
        self._stored = stored
        self._coalesce_s = coalesce_s
        self._wakes_per_s = wakes_per_s
        self._name = name
        self._cond = threading.Condition()
        self._waiting = 0  # waiters inside `wait_for`; read without the lock by `poke`
        self._poked = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None  # the dispatcher, started by the first waiter
        self.closed = False
        self.wakeups = 0  # notify_all calls made: for tests and the benchmark

    @property
    def stored_seq(self) -> int:
        return self._stored()

    @property
    def waiting(self) -> int:
        return self._waiting

    def poke(self, _seq: int = 0) -> None:
        """The store's listener thread: the stored seq went up. Never blocks; wakes nobody itself."""
        if self._waiting:
            self._poked.set()

    def wait_for(self, seq: int, timeout_s: float) -> bool:
        """Request thread: block until the store holds seq, the timeout passes, or `close`. True if
        it holds seq."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if self._thread is None and not self.closed:
                name = f"follow-wake-{self._name}"
                self._thread = threading.Thread(target=self._dispatch, name=name, daemon=True)
                self._thread.start()
            self._waiting += 1
            try:
                while not self.closed and self._stored() < seq:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            finally:
                self._waiting -= 1
        return self._stored() >= seq

    def pause(self, seconds: float) -> None:
        """Wait `seconds`, or until `close`: a caller's rate limit that never delays a stop."""
        self._stopped.wait(seconds)

    def close(self) -> None:
        """Wake every waiter for good (the node is stopping) and end the dispatcher."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        self._stopped.set()
        self._poked.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _dispatch(self) -> None:
        """The dispatcher thread: one `notify_all` per poke, at most one per `coalesce_s`."""
        while True:
            self._poked.wait()
            if self._stopped.is_set():
                return
            self._poked.clear()
            with self._cond:
                woken = self._waiting
                self._cond.notify_all()
                self.wakeups += 1
            pause_s = max(self._coalesce_s, woken / self._wakes_per_s)
            if self._stopped.wait(pause_s):  # the rate limit; ends early only at close
                return

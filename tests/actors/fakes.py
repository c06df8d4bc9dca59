"""Test doubles for actor tests: a scriptable transport, a recording actor, a settable clock."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pykka

from replog.core.batches import parse_replicate
from replog.core.errors import LogMismatch
from replog.core.matching import Mismatch
from replog.core.wire import Entry
from replog.net.transport import ProbeResult, TransportError
from replog.storage.store import MemoryStore


class FakeTransport:
    """A secondary behind a `Transport`: applies batches to its own store and answers its acked seq.

    Scripts: `fail(n)` makes the next n replicate calls raise; `hold()` blocks calls until `release()`;
    `probe_error` makes probes fail; `hold_probes()` blocks probes until `release_probes()`.
    Every replicate body is recorded (decoded) with the time it arrived.
    """

    def __init__(self) -> None:
        self.store = MemoryStore()
        self._lock = threading.Lock()
        self._failures: list[TransportError] = []
        self._open = threading.Event()
        self._open.set()
        self._probes_open = threading.Event()
        self._probes_open.set()
        self.bodies: list[dict[str, Any]] = []
        self.call_times: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.probe_error: str | None = None
        self.probes = 0
        self.fetches = 0
        self.fetch_error: str | None = None
        self.serves_entries = True  # False: GET /entries answers an empty page whatever it holds
        self.closed = False

    # scripting ------------------------------------------------------------------------------------
    def fail(self, times: int, *, answered: bool = True, refused: bool = False,
             detail: str = "HTTP 503: down") -> None:
        """The next `times` calls fail: with an HTTP answer (5xx, or a 4xx if refused), or without one."""
        with self._lock:
            self._failures.extend(TransportError(detail, answered=answered, refused=refused)
                                  for _ in range(times))

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def hold_probes(self) -> None:
        self._probes_open.clear()

    def release_probes(self) -> None:
        self._probes_open.set()

    def lose_log(self) -> None:
        """The secondary restarted with an empty log."""
        with self._lock:
            self.store = MemoryStore()

    def batches(self) -> list[list[int]]:
        with self._lock:
            return [[e.seq for e in parse_replicate(b).entries] for b in self.bodies]

    def messages(self) -> list[str]:
        return [e.message for e in self.store.read(1, 1_000_000)]

    # Transport ------------------------------------------------------------------------------------
    def replicate(self, body: bytes) -> int:
        decoded = json.loads(body)
        with self._lock:
            self.bodies.append(decoded)
            self.call_times.append(time.monotonic())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._open.wait(10.0)
            with self._lock:
                failure = self._failures.pop(0) if self._failures else None
                store = self.store
            if failure is not None:
                raise failure
            batch = parse_replicate(decoded)
            try:
                return store.apply(batch.log_id, batch.entries, batch.head)
            except LogMismatch as exc:  # as HttpPeer reads a 409 log_mismatch
                raise TransportError(
                    str(exc), answered=True, refused=True, mismatch=Mismatch.from_wire(exc.body())
                ) from None
        finally:
            with self._lock:
                self.in_flight -= 1

    def probe(self) -> ProbeResult:
        with self._lock:
            self.probes += 1
        self._probes_open.wait(10.0)
        if self.probe_error is not None:
            raise TransportError(self.probe_error)
        return ProbeResult(self.store.stored_seq, self.store.log_id)

    def fetch_entries(self, from_seq: int, limit: int) -> list[Entry]:
        with self._lock:
            self.fetches += 1
            store = self.store
        if self.fetch_error is not None:
            raise TransportError(self.fetch_error, answered=True)
        return store.read(from_seq, limit) if self.serves_entries else []

    def close(self) -> None:
        self.closed = True
        self.release()
        self.release_probes()


class Recorder(pykka.ThreadingActor):
    """An actor that keeps every message it is told, standing in for a gate or a link."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        self.received.append(message)
        return None


def received(recorder: pykka.ActorRef[Any], kind: type | None = None) -> list[Any]:
    """What the recorder got so far (asked through its mailbox, so every earlier tell is in)."""
    messages: list[Any] = recorder.proxy().received.get(timeout=5.0)
    return [m for m in list(messages) if kind is None or isinstance(m, kind)]


class FakeClock:
    """A clock that moves only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


"""Small threads that do blocking work for actors and report back only by `tell`."""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import pykka

log = logging.getLogger(__name__)


_events = itertools.count(1)


def event_stamp() -> int:
    """A process-wide increasing number that orders events seen on different threads (`next` on
    an `itertools.count` is atomic under the GIL). Not a clock: only before/after matters."""
    return next(_events)


def tell_quietly(ref: pykka.ActorRef[Any], message: object) -> None:
    """Tell, ignoring an actor that already stopped (normal during shutdown)."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)


class Worker:
    """One thread running submitted jobs one at a time (a link's sender, a heartbeat prober)."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:
                log.exception("worker=%s job failed", self._thread.name)


class Ticker:
    """Calls `tick` every `interval_s` until stopped; the first tick comes at once."""

    def __init__(self, name: str, interval_s: float, tick: Callable[[], None]) -> None:
        self._interval_s, self._tick = interval_s, tick
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._tick()
            self._stopped.wait(self._interval_s)

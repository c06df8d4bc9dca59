"""The append path of one request thread: admit, store, wait for w; apart from Bottle so it is easy to follow.

An append is refused at once if the master is read-only or too many writers already wait, stored
(which gives it its seq), then the thread blocks on its own future from the quorum gate; nothing
else waits for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

from replog.actors.gate import AcksFor, Cancel, QuorumView, Register
from replog.actors.threads import tell_quietly
from replog.config import MasterConfig
from replog.core.entry import NewEntry
from replog.core.errors import ClientGone, Overloaded, ReadOnly, ShuttingDown, WriteConcernTimeout
from replog.core.wire import AppendRequest
from replog.logs import node_logger
from replog.storage.store import Store

POLL_S = 0.25  # how often a waiting writer checks for a client hang-up
READ_ONLY_RETRY_AFTER_S = 1.0


class Appender:
    """The append path of one request thread, kept apart from Bottle so it is easy to follow."""

    def __init__(
        self,
        config: MasterConfig,
        store: Store,
        gate: pykka.ActorRef[Any],
        view: QuorumView,
        *,
        epoch: int | None = None,
    ) -> None:
        """`epoch`: cluster mode's fence, the epoch this master won (see `Store.append`)."""
        self._log = node_logger(__name__, config.name)
        self._store, self._gate, self._view, self._epoch = store, gate, view, epoch
        self._slots = threading.BoundedSemaphore(config.server.max_waiting_writers)
        self._retry_after_s = max(READ_ONLY_RETRY_AFTER_S, config.heartbeat_interval_s)

    def append(self, request: AppendRequest, hung_up: Callable[[], bool]) -> dict[str, Any]:
        """Admit, store, wait. The waiting-writer cap keeps threads free of long waits on
        secondaries; a w=1 append waits only for the master's own store, so it takes no slot and
        stays available however many writers wait (the README's promise)."""
        if request.w == 1:
            return self._append(request, hung_up)
        if not self._slots.acquire(blocking=False):
            raise Overloaded("too many writers are waiting; retry later", retry_after_s=1)
        try:
            return self._append(request, hung_up)
        finally:
            self._slots.release()

    def _append(self, request: AppendRequest, hung_up: Callable[[], bool]) -> dict[str, Any]:
        if self._view.read_only:
            raise ReadOnly(
                "no quorum: too few secondaries are reachable; nothing was stored",
                retry_after_s=self._retry_after_s,
            )
        started = time.monotonic()
        generation = self._store.generation  # so the gate knows whether a store failure dropped these
        repeats = 0
        if request.keys is None:
            entries = self._store.append(request.messages, generation=generation, epoch=self._epoch)
            seqs = [e.seq for e in entries]
        else:  # a repeat of a held key is not stored again: it waits for w on the original seq
            items = [NewEntry(m, k) for m, k in zip(request.messages, request.keys, strict=True)]
            outcome = self._store.append_unique(items, generation=generation, epoch=self._epoch)
            seqs, repeats = list(outcome.seqs), outcome.repeats
        first, last = min(seqs), max(seqs)  # acks are contiguous: w for the last is w for all
        self._log.debug("stored seqs=%d..%d repeats=%d; waiting for w=%d", first, last, repeats, request.w)
        acks = self._wait(last, request, hung_up, generation)
        self._log.debug(  # per append: DEBUG, so the default level costs nothing per request
            "append acknowledged seqs=%d..%d w=%d acks=%d wait_ms=%.1f",
            first,
            last,
            request.w,
            acks,
            (time.monotonic() - started) * 1000,
        )
        body: dict[str, Any] = {"w": request.w, "acks": acks}
        if request.bulk:
            body.update(seqs=seqs, first_seq=first, last_seq=last, count=len(seqs))
            if request.keys is not None:
                body["duplicates"] = repeats
        else:
            body.update(seq=last, message=request.messages[0])
            if request.keys is not None:
                body["duplicate"] = repeats == 1
        return body

    def _wait(self, seq: int, request: AppendRequest, hung_up: Callable[[], bool], generation: int) -> int:
        """Block this thread only, until seq is held by w nodes, the deadline, or a hang-up.
        A store failure that dropped the entry fails the future with StorageUnavailable (503)."""
        future: pykka.Future[int] = pykka.ThreadingFuture()
        try:
            self._gate.tell(Register(seq, request.w, future, generation))
        except pykka.ActorDeadError:
            raise ShuttingDown("node is shutting down; the entry is stored", seq=seq) from None
        deadline = None if request.timeout_s is None else time.monotonic() + request.timeout_s
        while True:
            wait_s = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - time.monotonic()))
            try:
                return future.get(timeout=wait_s)
            except pykka.Timeout:
                pass
            except ShuttingDown:
                raise ShuttingDown("node is shutting down; the entry is stored", seq=seq) from None
            if deadline is not None and time.monotonic() >= deadline:
                tell_quietly(self._gate, Cancel(future))
                acks = self._ask_acks(seq)
                self._log.warning("write concern timeout seq=%d w=%d acks=%d", seq, request.w, acks)
                durable = self._store.stored_seq >= seq and self._store.generation == generation
                raise WriteConcernTimeout(
                    f"w={request.w} not met within {request.timeout_s}s; "
                    + (
                        "the entry is stored and keeps replicating"
                        if durable  # else its disk may be failing: never claim what is not held
                        else "the master has not made the entry durable yet: it is stored only if a "
                        "later read shows it at this seq"
                    ),
                    seq=seq,
                    acks=acks,
                    w=request.w,
                )
            if hung_up():
                tell_quietly(self._gate, Cancel(future))
                self._log.info("client hung up while waiting seq=%d w=%d", seq, request.w)
                raise ClientGone("client closed the connection; the entry is stored", seq=seq)

    def _ask_acks(self, seq: int) -> int:
        try:
            return int(self._gate.ask(AcksFor(seq), block=True, timeout=1.0))
        except (pykka.Timeout, pykka.ActorDeadError):
            return 0

"""A secondary link: the retry/backoff state machine that moves batches to one secondary.

The actor decides what to send (`replication.LinkState`), its sender thread does the blocking HTTP
call, and the outcome comes back as a `tell`. One batch is in flight at a time, starting right after
the secondary's acked seq, so catch-up after an outage is the same path with bigger batches.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

import pykka

from replog.actors.base import ReplogActor
from replog.actors.gate import Acked
from replog.actors.threads import Worker, event_stamp, tell_quietly
from replog.config import LinkConfig
from replog.core import backoff
from replog.core.health import Status
from replog.core.replication import LinkState
from replog.core.wire import encode_batch
from replog.logs import node_logger
from replog.net.transport import Transport, TransportError
from replog.storage.store import Store


class Wake:
    """New entries are stored; send if idle."""


@dataclass(frozen=True, slots=True)
class Sent:
    acked_seq: int
    first_seq: int
    last_seq: int
    answered_at: int  # event stamp taken when the answer arrived


@dataclass(frozen=True, slots=True)
class SendFailed:
    error: str
    answered: bool
    refused: bool
    failed_at: int  # event stamp taken when the failure was seen


@dataclass(frozen=True, slots=True)
class RetryDue:
    generation: int


@dataclass(frozen=True, slots=True)
class NodeStatus:
    status: Status


@dataclass(frozen=True, slots=True)
class Probed:
    acked_seq: int
    asked_at: int  # event stamp taken before the probe was sent


class Describe:
    """Ask for the link's state, for /health."""


class WakeSignal:
    """Coalesces wake-ups: at most one `Wake` waits in the link's mailbox at any time, and none
    while a batch is in flight, since the link looks for new entries when its answer comes back.
    Every wake-up skipped is a thread switch saved on the append path."""

    def __init__(self) -> None:
        self._ref: pykka.ActorRef[Any] | None = None
        self._pending = threading.Event()
        self._in_flight = False

    def bind(self, ref: pykka.ActorRef[Any]) -> None:
        self._ref = ref

    def __call__(self) -> None:
        if self._ref is not None and not self._in_flight and not self._pending.is_set():
            self._pending.set()
            tell_quietly(self._ref, Wake())

    def taken(self) -> None:
        self._pending.clear()

    def in_flight(self, sending: bool) -> None:
        """Set by the link: True when it hands a batch to its sender, False before it looks again.
        The store advances stored_seq before it signals, so an entry is never left unseen."""
        self._in_flight = sending


class SecondaryLink(ReplogActor):
    def __init__(
        self,
        node: str,
        url: str,
        store: Store,
        transport: Transport,
        gate: pykka.ActorRef[Any],
        config: LinkConfig,
        rng: random.Random,
        wake: WakeSignal,
    ) -> None:
        super().__init__()
        self._log = node_logger(__name__, node)
        self._url, self._store, self._transport = url, store, transport
        self._gate, self._config, self._rng = gate, config, rng
        self._state = LinkState()
        self._status = Status.UNHEALTHY
        self._timer: threading.Timer | None = None
        self._generation = 0  # invalidates timers that fired after they were superseded
        self._resent = 0  # entries sent again after a failure or a lost log: shown in /health
        self._highest_sent = 0
        self._wake = wake

    def on_start(self) -> None:
        self._sender = Worker(f"send-{self._url}")

    def on_stop(self) -> None:
        self._cancel_timer()
        self._sender.stop()
        self._transport.close()

    def handle(self, message: Any) -> Any:
        match message:
            case Wake():
                self._wake.taken()
            case Sent(acked_seq, first_seq, last_seq, answered_at):
                self._wake.in_flight(False)
                self._sent(acked_seq, first_seq, last_seq, answered_at)
            case SendFailed(error, answered, refused, failed_at):
                self._wake.in_flight(False)
                self._failed(error, answered, refused, failed_at)
            case RetryDue(generation) if generation == self._generation:
                self._state.retry_due()
            case NodeStatus(status):
                self._status = status
                if status is Status.HEALTHY and self._state.retry_due():
                    self._cancel_timer()
                    self._log.info("secondary healthy again; retrying now secondary=%s", self._url)
            case Probed(acked_seq, asked_at):
                if self._state.probed(acked_seq, asked_at):
                    tell_quietly(self._gate, Acked(self._url, acked_seq))
            case Describe():
                return self._describe()
        self._pump()
        return None

    def _pump(self) -> None:
        stored = self._store.stored_seq
        first = self._state.next_from(stored)
        if first is None:
            return
        if self._state.known:
            entries = self._store.read(first, self._config.batch_max_entries, self._config.batch_max_bytes)
            if not entries:
                return
        else:
            entries = []  # handshake: learn the secondary's acked seq before sending entries
        log_id = self._store.log_id
        assert log_id is not None, "a master store always has a log id"
        body = encode_batch(log_id, first, entries)
        last = entries[-1].seq if entries else first - 1
        self._resent += max(0, min(last, self._highest_sent) - first + 1)
        self._highest_sent = max(self._highest_sent, last)
        self._state.sending()
        self._wake.in_flight(True)
        self._sender.submit(lambda: self._send(body, first, last))

    def _send(self, body: bytes, first: int, last: int) -> None:
        """Runs on the sender thread: the only place this link blocks on the network."""
        try:
            acked = self._transport.replicate(body)
        except TransportError as exc:
            tell_quietly(self.actor_ref, SendFailed(str(exc), exc.answered, exc.refused, event_stamp()))
        else:
            tell_quietly(self.actor_ref, Sent(acked, first, last, event_stamp()))

    def _sent(self, acked_seq: int, first: int, last: int, answered_at: int) -> None:
        recovering = self._state.attempt > 0
        self._state.succeeded(acked_seq, answered_at)
        tell_quietly(self._gate, Acked(self._url, acked_seq))
        if first > last:
            self._log.info("handshake done secondary=%s acked=%d", self._url, acked_seq)
        elif acked_seq < last:
            self._log.warning(
                "secondary acked less than sent; resending from its acked seq "
                "secondary=%s sent=%d..%d acked=%d",
                self._url,
                first,
                last,
                acked_seq,
            )
        elif recovering:
            self._log.info("replication resumed secondary=%s acked=%d", self._url, acked_seq)
        else:
            self._log.debug("replicated secondary=%s seqs=%d..%d", self._url, first, last)

    def _failed(self, error: str, answered: bool, refused: bool, failed_at: int) -> None:
        attempt = self._state.failed(error, answered=answered, failed_at=failed_at)
        status = Status.UNHEALTHY if refused else self._status
        delay_s = backoff.delay(attempt, status, self._rng, self._config.backoff)
        self._log.warning(
            "replicate failed; retrying secondary=%s attempt=%d delay_s=%.3f error=%s",
            self._url,
            attempt,
            delay_s,
            error,
        )
        self._cancel_timer()
        self._generation += 1
        self._timer = threading.Timer(delay_s, tell_quietly, (self.actor_ref, RetryDue(self._generation)))
        self._timer.daemon = True
        self._timer.start()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._generation += 1

    def _describe(self) -> dict[str, Any]:
        return {
            "acked_seq": self._state.acked_seq,
            "replication": self._state.phase.value,
            "attempt": self._state.attempt,
            "last_error": self._state.last_error,
            "resent_entries": self._resent,
        }

"""A secondary link: carries out the decisions of its replication state machine for one secondary.

`replication.LinkState` decides everything (what to send, handshakes, how long to wait, which timer
counts); this actor feeds it events and carries its decisions out: it reads a batch from the store
and hands it to its own sender thread, which does the blocking HTTP call and reports back with a
`tell`, or it starts the one timer the state asked for. One batch is in flight at a time, starting
right after the secondary's acked seq, so catch-up after an outage is the same path with bigger
batches.

Threads: `handle` and everything it calls run on the link actor's thread; `_send` on the sender
thread; `WakeSignal` and `StoredSeqFanout` (in `actors.wake`) on the store's flusher thread.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from replog.actors.base import ReplogActor
from replog.actors.gate import Acked, LinkVerdict
from replog.actors.threads import Worker, event_stamp, tell_quietly
from replog.actors.wake import StoredSeqFanout as StoredSeqFanout  # noqa: PLC0414 -- re-exported
from replog.actors.wake import Wake as Wake  # noqa: PLC0414 -- re-exported
from replog.actors.wake import WakeSignal as WakeSignal  # noqa: PLC0414 -- re-exported
from replog.config import LinkConfig
from replog.core.batches import encode_batch
from replog.core.epochs import EpochIndex
from replog.core.errors import ShuttingDown
from replog.core.health import Status
from replog.core.matching import NOTHING, BatchHead, Fingerprint, Mismatch
from replog.core.records import CorruptLog
from replog.core.replication import Decision, Idle, LinkState, Send, Wait
from replog.core.wire import Entry
from replog.logs import node_logger
from replog.net.transport import Transport, TransportError
from replog.storage.failure import StorageError
from replog.storage.store import Store

FatalCallback = Callable[[str], None]
BehindCallback = Callable[[str, int], None]
# The master's own log cannot be read: retrying will not help, and a node that keeps answering
# without replicating would be half-dead. Anything else that goes wrong reading is retried.
FATAL_STORE_ERRORS = (CorruptLog, StorageError, OSError)


@dataclass(frozen=True, slots=True)
class Sent:
    acked_seq: int
    first_seq: int
    last_seq: int
    answered_at: int  # event stamp taken when the answer arrived


@dataclass(frozen=True, slots=True)
class Refused:
    """The secondary refused the batch: it does not attach to its log (409 `log_mismatch`)."""

    mismatch: Mismatch
    answered_at: int


@dataclass(frozen=True, slots=True)
class Disproved:
    """The master could not learn the entries the secondary claims to hold up to `claim`."""

    claim: int
    reason: str


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
        on_fatal: FatalCallback,
        on_behind: BehindCallback | None = None,
    ) -> None:
        """`on_fatal(reason)` is called (on this actor's thread) when the master's own log cannot be
        read; it must only hand the stop to another thread. `on_behind(url, seq)` (same thread, must
        not block) when the secondary verifiably holds our whole log and more, up to seq."""
        super().__init__()
        self._log = node_logger(__name__, node)
        self._url, self._store, self._transport = url, store, transport
        self._gate, self._config, self._on_fatal = gate, config, on_fatal
        self._on_behind = on_behind if on_behind is not None else (lambda url, seq: None)
        self._state = LinkState(config.backoff, rng)
        self._told: tuple[int, bool, int | None] = (-1, False, None)  # (acked, counted, behind) told
        self._told_conflict: str | None = None
        self._timer: threading.Timer | None = None
        self._wake = wake
        wake.bind(self.actor_ref, self._state)

    def on_start(self) -> None:
        self._sender = Worker(f"send-{self._url}")

    def on_stop(self) -> None:
        self._cancel_timer()
        self._sender.stop()
        self._transport.close()

    def handle(self, message: Any) -> Any:
        state = self._state
        match message:
            case Wake():
                self._wake.taken()
            case Sent(acked_seq, first_seq, last_seq, answered_at):
                recovering = state.attempt > 0
                state.sent(acked_seq, answered_at)
                self._log_sent(acked_seq, first_seq, last_seq, recovering)
            case Refused(mismatch, answered_at):
                stored = self._store.stored_seq
                state.refused(mismatch, EpochIndex(self._store.bounds()), stored, answered_at)
                self._log.info(
                    "secondary refused a batch; searching where our logs match secondary=%s reason=%s "
                    "its_last_seq=%d next_prev_seq=%s",
                    self._url, mismatch.reason.value, mismatch.last_seq, state.guess,
                )  # fmt: skip
            case SendFailed(error, answered, refused, failed_at):
                state.failed(error, answered=answered, refused=refused, failed_at=failed_at)
            case Disproved(claim, reason):
                state.disproved(claim, reason)
            case RetryDue(generation):
                state.retry_due(generation)
            case NodeStatus(status):
                if state.node_status(status):
                    self._log.info("secondary healthy again; retrying now secondary=%s", self._url)
            case Probed(acked_seq, asked_at):
                state.probed(acked_seq, asked_at)
            case Describe():
                return self._describe()
        decision = state.decide(self._store.stored_seq)  # stored_seq read after the event
        self._publish()  # after decide: it judges whether we are behind
        self._carry_out(decision)
        return None

    def _publish(self) -> None:
        """Tell the gate what changed: the verified seq (0 while not counted), whether this link
        counts toward quorum, and whether it shows this master behind; log conflicts once each."""
        state = self._state
        acked = state.acked_seq if state.counted else 0
        if acked != self._told[0]:
            tell_quietly(self._gate, Acked(self._url, acked))
        verdict = (state.counted, state.behind)
        if verdict != self._told[1:]:
            tell_quietly(self._gate, LinkVerdict(self._url, state.counted, state.behind))
            if state.behind is not None:
                self._on_behind(self._url, state.behind)
        if state.conflict != self._told_conflict:
            if state.conflict is not None:
                self._log.error(
                    "log conflict; secondary not counted toward quorum or write concern secondary=%s "
                    "conflict=%s",
                    self._url, state.conflict,
                )  # fmt: skip
            else:
                self._log.info("log conflict cleared secondary=%s", self._url)
            self._told_conflict = state.conflict
        self._told = (acked, *verdict)

    def _carry_out(self, decision: Decision) -> None:
        match decision:
            case Send(first_seq, handshake):
                self._cancel_timer()  # sending means no wait is pending: any timer is stale
                self._send_batch(first_seq, handshake)
            case Wait(delay_s, generation):
                self._log.warning(
                    "replicate failed; retrying secondary=%s attempt=%d delay_s=%.3f error=%s",
                    self._url,
                    self._state.attempt,
                    delay_s,
                    self._state.last_error,
                )
                self._cancel_timer()
                self._timer = threading.Timer(delay_s, tell_quietly, (self.actor_ref, RetryDue(generation)))
                self._timer.daemon = True
                self._timer.start()
            case Idle():
                pass

    def _send_batch(self, first: int, handshake: bool) -> None:
        try:
            prev, entries = self._read(first, handshake)
            log_id = self._store.log_id
            assert log_id is not None, "a master store always has a log id"
            body = encode_batch(log_id, BatchHead.after(prev, self._store.epoch), entries)
        except FATAL_STORE_ERRORS as exc:
            reason = f"reading the log for secondary {self._url} from seq {first} failed: {exc}"
            self._log.exception("link stopped: %s", reason)
            self._state.broken(reason)
            self._on_fatal(reason)
            return
        except ShuttingDown as exc:
            self._state.read_failed(f"reading the log: {exc}")
            self._carry_out(self._state.decide(self._store.stored_seq))
            return
        except Exception as exc:
            self._log.exception("reading a batch failed secondary=%s first_seq=%d", self._url, first)
            self._state.read_failed(f"reading the log from seq {first} failed: {exc!r}")
            self._carry_out(self._state.decide(self._store.stored_seq))
            return
        last = entries[-1].seq if entries else first - 1
        self._state.dispatched(last)
        self._sender.submit(lambda: self._send(body, first, last))

    def _read(self, first: int, handshake: bool) -> tuple[Fingerprint, list[Entry]]:
        """The fingerprint of the entry before the batch, and the batch (none for a handshake): one
        store read for both, as a rule."""
        prev_seq = first - 1
        count = 0 if handshake else self._config.batch_max_entries
        if prev_seq == 0:
            page = [] if handshake else self._store.read(first, count, self._config.batch_max_bytes)
            prev = NOTHING
        else:
            page = self._store.read(prev_seq, count + 1, self._config.batch_max_bytes)
            if not page or page[0].seq != prev_seq:
                raise LookupError(f"the store returned {len(page)} entries for seq {prev_seq} on")
            prev, page = Fingerprint.of(page[0]), page[1:]
            if not page and not handshake:  # the entry before was as big as a batch may be
                page = self._store.read(first, count, self._config.batch_max_bytes)
        if not handshake and (not page or page[0].seq != first):
            raise LookupError(f"the store returned {len(page)} entries for seq {first} on")
        return prev, page

    def _send(self, body: bytes, first: int, last: int) -> None:
        """Runs on the sender thread: the only place this link blocks on the network."""
        try:
            acked = self._transport.replicate(body)
        except TransportError as exc:
            if exc.mismatch is not None:
                tell_quietly(self.actor_ref, Refused(exc.mismatch, event_stamp()))
            else:
                tell_quietly(self.actor_ref, SendFailed(str(exc), exc.answered, exc.refused, event_stamp()))
        else:
            tell_quietly(self.actor_ref, Sent(acked, first, last, event_stamp()))

    def _log_sent(self, acked_seq: int, first: int, last: int, recovering: bool) -> None:
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

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _describe(self) -> dict[str, Any]:
        state = self._state
        return {
            "acked_seq": state.acked_seq,
            "reported_seq": state.reported_seq,  # what it says it holds: a hint, never counted
            "counted": state.counted,  # verified, no conflict: counts toward quorum and write concern
            "conflict": state.conflict,
            "behind": state.behind,  # it holds our whole log and more, up to this seq
            "replication": state.phase.value,
            "attempt": state.attempt,
            "last_error": state.last_error,
            "resent_entries": state.resent,
            # A secondary that accepted a batch carrying our log id holds it, even if no probe saw it yet.
            "log_id": self._store.log_id if state.log_accepted else None,
        }

"""One secondary link's replication state machine: pure, and the only place the link decides anything.

The link actor feeds it events (an answer, a failure, a timer, a health change, a probe) and then asks
`decide(stored_seq)` what to do: `Send` a batch, `Wait` (start one timer), or stay `Idle`. The actor
only carries the decision out. At most one batch is in flight, always starting right after the
secondary's acked seq, so entries arrive in order and a lost answer only causes a resend that the
secondary deduplicates. While the secondary's acked seq is unknown (at start, or after a send got no
answer, when it may have restarted), the next batch is an empty handshake that returns it, so a
restarted secondary is sent only what it lacks.

Transitions (an event not legal in the current phase raises `IllegalStep` and changes nothing):

| phase       | event                                 | next phase  | what follows                          |
| ----------- | ------------------------------------- | ----------- | ------------------------------------- |
| IDLE        | decide, acked < stored                | SENDING     | `Send(acked + 1, handshake)`          |
| SENDING     | dispatched(last) (the batch is read)  | SENDING     | counts entries sent a second time     |
| SENDING     | read_failed(error), before dispatched | BACKING_OFF | `Wait` at the next decide             |
| SENDING     | broken(error), before dispatched      | BROKEN      | `Idle` for good (the node stops)      |
| SENDING     | sent(acked), after dispatched         | IDLE        | report the acked seq to the gate      |
| SENDING     | failed(...), after dispatched         | BACKING_OFF | `Wait` at the next decide             |
| BACKING_OFF | retry_due(current generation)         | IDLE        | send again if there is anything       |
| BACKING_OFF | node_status(HEALTHY)                  | IDLE        | the pending timer is now stale        |
| not SENDING | probed(acked), asked after last news  | unchanged   | adopt it; report it if it changed     |

`retry_due` of an older generation is a stale timer and is ignored; `node_status` and `probed` are
legal everywhere (a probe is ignored while a batch is in flight, since its answer will tell).

Threads: only the link actor's thread calls these methods. `idle` is the one value read from other
threads (the store's flusher, through the link's wake signal): a single attribute read, atomic under
the GIL, and the actor always makes the phase leave SENDING or BACKING_OFF *before* it reads
`stored_seq` for the next decision, so a wake-up skipped while not idle never hides an entry.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from replog.core.backoff import BackoffPolicy, delay
from replog.core.health import Status


class IllegalStep(Exception):
    """An event that the link's current phase does not allow: a bug in the caller, never a network fault."""


class Phase(enum.Enum):
    IDLE = "idle"  # nothing in flight; sends when there is something to send
    SENDING = "sending"  # one batch in flight (or being read from the store for sending)
    BACKING_OFF = "backing_off"  # last attempt failed; a timer (or a Healthy node) ends the wait
    BROKEN = "broken"  # the master's own log failed to read: nothing more is sent; the node stops


@dataclass(frozen=True, slots=True)
class Send:
    """Send the batch starting at first_seq: read it from the store, or an empty one if a handshake."""

    first_seq: int
    handshake: bool


@dataclass(frozen=True, slots=True)
class Wait:
    """Start one timer that tells `RetryDue(generation)` after delay_s."""

    delay_s: float
    generation: int


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing to do until the next event."""


IDLE = Idle()
Decision = Send | Wait | Idle


@dataclass
class LinkState:
    policy: BackoffPolicy = field(compare=False)
    rng: random.Random = field(compare=False, repr=False)  # the only source of jitter
    acked_seq: int = 0
    known: bool = False  # whether acked_seq is what the secondary last told us
    phase: Phase = Phase.IDLE
    attempt: int = 0  # consecutive failed attempts
    last_error: str | None = None  # the latest failure, kept until a batch is answered
    fresh_after: int = 0  # event stamp of the last batch outcome: a probe asked before it is old news
    node_down: bool = True  # the heartbeat sees the node Unhealthy (so a retry waits the full cap)
    generation: int = 0  # of the timer the state waits for; an older timer is stale
    resent: int = 0  # entries sent again after a failure or a lost log: shown in /health
    highest_sent: int = 0
    log_accepted: bool = False  # a batch with our log id was accepted, and nothing since says otherwise
    batch_from: int | None = None  # first seq of the batch in flight, from decide until its outcome
    batch_to: int | None = None  # its last seq, once dispatched (first - 1 for a handshake)
    pending_wait: Wait | None = None  # the wait the next decide hands out

    @property
    def idle(self) -> bool:
        """Whether a wake-up can make a difference: read from other threads (see the module doc)."""
        return self.phase is Phase.IDLE

    # decisions ----------------------------------------------------------------------------------------
    def decide(self, stored_seq: int) -> Decision:
        """What the link does next, given the master's stored seq read *after* the last event."""
        if self.pending_wait is not None:
            wait, self.pending_wait = self.pending_wait, None
            return wait
        if self.phase is Phase.IDLE and self.acked_seq < stored_seq:
            self.phase, self.batch_from, self.batch_to = Phase.SENDING, self.acked_seq + 1, None
            return Send(self.acked_seq + 1, handshake=not self.known)
        return IDLE

    # events -------------------------------------------------------------------------------------------
    def dispatched(self, last_seq: int) -> None:
        """The batch decided by `Send` was read (it ends at last_seq) and goes to the sender now."""
        first = self._require_batch("dispatched", dispatched=False)
        if (last_seq != first - 1) if not self.known else (last_seq < first):
            raise IllegalStep(f"a batch from {first} cannot end at {last_seq} (handshake: {not self.known})")
        self.batch_to = last_seq
        self.resent += max(0, min(last_seq, self.highest_sent) - first + 1)
        self.highest_sent = max(self.highest_sent, last_seq)

    def sent(self, acked_seq: int, answered_at: int = 0) -> int:
        """The secondary answered; its acked seq may be lower than we thought (it lost its log).
        Returns the acked seq to report to the quorum gate."""
        self._require_batch("sent", dispatched=True)
        self.fresh_after = max(self.fresh_after, answered_at)
        self.acked_seq, self.known, self.log_accepted = acked_seq, True, True
        self.phase, self.batch_from, self.batch_to = Phase.IDLE, None, None
        self.attempt, self.last_error = 0, None
        return acked_seq

    def failed(self, error: str, *, answered: bool, refused: bool = False, failed_at: int = 0) -> None:
        """The batch in flight failed. `answered` False (no HTTP answer) means the node may have
        restarted: learn its acked seq again, from a handshake or from a probe asked after `failed_at`
        (one asked earlier may have read the node before it stored, and died with, the batch that just
        failed). `refused` (a 4xx) will not change by retrying soon: wait the full cap."""
        self._require_batch("failed", dispatched=True)
        if not answered:
            self.fresh_after = max(self.fresh_after, failed_at)
        self.known = self.known and answered
        self.log_accepted = self.log_accepted and answered and not refused
        self._back_off(error, full_cap=refused or self.node_down)

    def read_failed(self, error: str) -> None:
        """Reading the batch from the master's own store failed (not fatally): retry with backoff."""
        self._require_batch("read_failed", dispatched=False)
        self._back_off(error, full_cap=False)

    def broken(self, error: str) -> None:
        """Reading the master's own store failed for good (a corrupt or failed log): stop sending."""
        self._require_batch("broken", dispatched=False)
        self.phase, self.batch_from, self.batch_to = Phase.BROKEN, None, None
        self.last_error, self.pending_wait = error, None

    def retry_due(self, generation: int) -> None:
        """A backoff timer fired; one of an older generation was superseded and is ignored."""
        if generation > self.generation:
            raise IllegalStep(f"timer generation {generation} was never handed out (at {self.generation})")
        if generation < self.generation or self.phase is Phase.BROKEN:
            return
        if self.phase is not Phase.BACKING_OFF or self.pending_wait is not None:
            raise IllegalStep(f"retry_due of the current timer while {self.phase.value}")
        self.phase = Phase.IDLE

    def node_status(self, status: Status) -> bool:
        """The heartbeat's view changed. Returns True if this ends a backoff: Healthy again, retry now."""
        self.node_down = status is Status.UNHEALTHY
        if status is Status.HEALTHY and self.phase is Phase.BACKING_OFF:
            self.phase, self.pending_wait = Phase.IDLE, None
            self.generation += 1  # the running timer is stale now
            return True
        return False

    def probed(self, acked_seq: int, asked_at: int) -> int | None:
        """Adopt the acked seq a heartbeat saw, unless a batch is in flight (it will answer) or the
        probe was asked before the last batch was answered or failed unanswered: the node may have
        read its seq before storing that batch, and adopting it would resend what it holds. A lost
        log still shows in the next probe. Returns the acked seq to report if it changed."""
        if self.phase in (Phase.SENDING, Phase.BROKEN) or asked_at < self.fresh_after:
            return None
        changed = acked_seq != self.acked_seq
        self.acked_seq, self.known = acked_seq, True
        return acked_seq if changed else None

    # helpers ------------------------------------------------------------------------------------------
    def _require_batch(self, event: str, *, dispatched: bool) -> int:
        """Checks, before any change, that a batch is in flight and whether it was dispatched."""
        if self.phase is not Phase.SENDING or self.batch_from is None:
            raise IllegalStep(f"{event} while {self.phase.value}: no batch in flight")
        if (self.batch_to is not None) != dispatched:
            when = "before the batch was dispatched" if dispatched else "after the batch was dispatched"
            raise IllegalStep(f"{event} {when}")
        return self.batch_from

    def _back_off(self, error: str, *, full_cap: bool) -> None:
        self.phase, self.batch_from, self.batch_to = Phase.BACKING_OFF, None, None
        self.attempt += 1
        self.last_error = error
        self.generation += 1
        delay_s = delay(self.attempt, self.rng, self.policy, full_cap=full_cap)
        self.pending_wait = Wait(delay_s, self.generation)

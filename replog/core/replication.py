"""One secondary link's replication state machine: pure, and the only place the link decides anything.

The link actor feeds it events (an answer, a refusal, a failure, a timer, a health change, a probe)
and then asks `decide(stored_seq)` what to do: `Send` a batch, `Wait` (start one timer), or stay
`Idle`. The actor only carries the decision out. At most one batch is in flight, always starting
right after the secondary's verified seq, so entries arrive in order and a lost answer only causes a
resend that the secondary deduplicates.

**The master never counts an ack it cannot verify** (issue 11 C7). Every batch carries the entry
before it (`core.matching`), so an accepted batch proves the secondary's log equals ours up to the
batch's last seq: `acked_seq`, the only figure the quorum gate hears, is capped there (at prev_seq
for an empty handshake). What the secondary *says* it holds (`reported_seq`, from answers and
heartbeat probes) is only a hint for where the next handshake starts. While the verified seq is
uncertain (at start, after a send got no answer, or when a probe says otherwise) the next batch is an
empty handshake at the best guess; a refusal (`refused`) picks the next guess with
`core.matching.next_candidate` (one round trip per epoch boundary, at most MAX_SEARCH_ROUNDS).

Two states need the operator or the master itself (`counted` False, shown in /health):
- **conflict**: the logs disagree (a "content" refusal, a search that finds no match point). The
  link backs off at the full cap and checks again, so it clears by itself once the node is fixed.
- **behind** (issue 11 C8): the secondary verifiably holds our whole log and more. The master must
  learn the missing entries from it before it takes writes; until then the link sends nothing.

Transitions (an event not legal in the current phase raises `IllegalStep` and changes nothing):

| phase       | event                                 | next phase  | what follows                          |
| ----------- | ------------------------------------- | ----------- | ------------------------------------- |
| IDLE        | decide, not known                     | SENDING     | `Send(guess + 1, handshake)`          |
| IDLE        | decide, known, acked < stored         | SENDING     | `Send(acked + 1)`                     |
| SENDING     | dispatched(last) (the batch is read)  | SENDING     | counts entries sent a second time     |
| SENDING     | read_failed(error), before dispatched | BACKING_OFF | `Wait` at the next decide             |
| SENDING     | broken(error), before dispatched      | BROKEN      | `Idle` for good (the node stops)      |
| SENDING     | sent(acked), after dispatched         | IDLE        | report the verified seq to the gate   |
| SENDING     | refused(mismatch), after dispatched   | IDLE        | handshake at the next candidate       |
| SENDING     | refused(...) with no candidate left   | BACKING_OFF | conflict; `Wait` the full cap         |
| SENDING     | failed(...), after dispatched         | BACKING_OFF | `Wait` at the next decide             |
| BACKING_OFF | retry_due(current generation)         | IDLE        | send again if there is anything       |
| BACKING_OFF | node_status(HEALTHY)                  | IDLE        | the pending timer is now stale        |
| not SENDING | probed(seq), asked after last news    | unchanged   | a hint; lowers acked if it is below   |

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
from replog.core.epochs import EpochIndex
from replog.core.health import Status
from replog.core.matching import MAX_SEARCH_ROUNDS, Mismatch, next_candidate


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
    acked_seq: int = 0  # verified: the secondary holds our log up to here (the gate counts it)
    known: bool = False  # whether acked_seq is verified by the last answer, with nothing since to doubt it
    reported_seq: int | None = None  # what the secondary last said it holds: a hint, never counted
    guess: int | None = None  # prev_seq of the next handshake, picked by a refusal
    rounds: int = 0  # refusals in a row in the current search for the match point
    verified: bool = False  # a batch was accepted, and no conflict since
    conflict: str | None = None  # why our logs disagree, until an answer says they agree again
    behind: int | None = None  # the secondary verifiably holds our whole log, up to this seq
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
    handshake: bool = False  # whether the batch in flight is an empty handshake
    answer_claimed_more: bool = False  # the last answer said more than its batch proved
    disproved_claim: int | None = None  # a claim the master could not learn from (see `disproved`)
    refuted_claim: int | None = None  # a claim a refusal showed differs from our log: not checked again
    pending_wait: Wait | None = None  # the wait the next decide hands out

    @property
    def idle(self) -> bool:
        """Whether a wake-up can make a difference: read from other threads (see the module doc)."""
        return self.phase is Phase.IDLE

    @property
    def counted(self) -> bool:
        """Whether this secondary counts toward quorum: verified, and not in conflict."""
        return self.verified and self.conflict is None

    # decisions ----------------------------------------------------------------------------------------
    def decide(self, stored_seq: int) -> Decision:
        """What the link does next, given the master's stored seq read *after* the last event."""
        if self.pending_wait is not None:
            wait, self.pending_wait = self.pending_wait, None
            return wait
        if self.phase is not Phase.IDLE:
            return IDLE
        claimed = self.reported_seq if self.reported_seq is not None else 0
        if self.conflict is not None:
            self.behind = None  # a node in conflict is never learned from
        elif self.known:
            verified_to_our_end = self.acked_seq >= stored_seq
            self.behind = claimed if verified_to_our_end and claimed > stored_seq else None
        elif self.behind is not None and stored_seq >= self.behind:
            self.behind = None  # caught up; while unsure otherwise, stay behind: it is the safe side
        if self.behind is not None:
            return IDLE  # it holds all we have and more: we learn from it, never overwrite it
        claimed_here = min(claimed, stored_seq)
        if (
            self.known
            and self.answer_claimed_more
            and self.acked_seq < claimed_here
            and claimed != self.refuted_claim
        ):
            # It holds more than the last answer proved (and no more than we hold): check there,
            # rather than resend what it holds. Not if a refusal already showed that what it holds
            # there differs from ours (cluster mode: our batch makes it roll that suffix back).
            self.known, self.guess = False, claimed_here
        self.answer_claimed_more = False
        if not self.known:
            hint = self.guess if self.guess is not None else self.reported_seq
            prev = stored_seq if hint is None else min(hint, stored_seq)
            self.phase, self.batch_from, self.batch_to, self.handshake = Phase.SENDING, prev + 1, None, True
            return Send(prev + 1, handshake=True)
        if self.acked_seq < stored_seq:
            self.phase, self.batch_from, self.batch_to = Phase.SENDING, self.acked_seq + 1, None
            self.handshake = False
            return Send(self.acked_seq + 1, handshake=False)
        return IDLE

    # events -------------------------------------------------------------------------------------------
    def dispatched(self, last_seq: int) -> None:
        """The batch decided by `Send` was read (it ends at last_seq) and goes to the sender now."""
        first = self._require_batch("dispatched", dispatched=False)
        if (last_seq != first - 1) if self.handshake else (last_seq < first):
            raise IllegalStep(f"a batch from {first} cannot end at {last_seq} (handshake: {self.handshake})")
        self.batch_to = last_seq
        if not self.handshake:  # a handshake carries no entries
            self.resent += max(0, min(last_seq, self.highest_sent) - first + 1)
            self.highest_sent = max(self.highest_sent, last_seq)

    def sent(self, acked_seq: int, answered_at: int = 0) -> int:
        """The secondary accepted the batch (it passed the consistency check) and holds up to
        acked_seq. Only what the batch proved counts: acked_seq capped at its last seq. Returns the
        verified seq to report to the quorum gate."""
        self._require_batch("sent", dispatched=True)
        assert self.batch_to is not None  # dispatched
        self.fresh_after = max(self.fresh_after, answered_at)
        self.acked_seq = min(acked_seq, self.batch_to)
        self.answer_claimed_more = acked_seq > self.batch_to
        if not self.answer_claimed_more:
            self.refuted_claim = None
        self.reported_seq, self.known, self.log_accepted, self.verified = acked_seq, True, True, True
        self.guess, self.rounds = None, 0
        if self.disproved_claim is None or acked_seq != self.disproved_claim:
            self.conflict, self.disproved_claim = None, None  # a claim we could not check stays a conflict
        self.phase, self.batch_from, self.batch_to = Phase.IDLE, None, None
        self.attempt, self.last_error = 0, None
        return self.acked_seq

    def refused(
        self, refusal: Mismatch, ours: EpochIndex, ours_last: int, answered_at: int = 0
    ) -> int | None:
        """The secondary refused the batch: it does not attach to its log (`core.matching`). Search
        on from a lower candidate, or, if there is none, call it a conflict (not counted; back off at
        the full cap, then check again). `ours`/`ours_last`: the master's epoch boundaries and last
        seq. Returns the verified seq to report if it went down."""
        first = self._require_batch("refused", dispatched=True)
        candidate = next_candidate(refusal, first - 1, ours, ours_last)
        if isinstance(candidate, int) and self.rounds + 1 > MAX_SEARCH_ROUNDS:
            candidate = f"no match point found in {MAX_SEARCH_ROUNDS} round trips"
        self.fresh_after = max(self.fresh_after, answered_at)
        self.reported_seq, self.known = refusal.last_seq, False
        self.refuted_claim = refusal.last_seq
        before = self.acked_seq
        if isinstance(candidate, str):
            self.conflict, self.verified, self.acked_seq, self.behind = candidate, False, 0, None
            self.guess, self.rounds = None, 0
            self._back_off(f"log conflict: {candidate}", full_cap=True)
        else:
            self.acked_seq = min(self.acked_seq, candidate)
            self.guess, self.rounds = candidate, self.rounds + 1
            self.phase, self.batch_from, self.batch_to = Phase.IDLE, None, None
        return self.acked_seq if self.acked_seq != before else None

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

    def disproved(self, claim: int, reason: str) -> None:
        """The master could not learn the entries this secondary claims to hold up to `claim` (it
        serves none of them): a conflict, not counted, never learned from, until it claims
        something else. Legal in every phase (the catch-up worker does not know the link's)."""
        if self.phase is Phase.BROKEN:
            return
        self.conflict, self.disproved_claim, self.verified = reason, claim, False
        self.behind, self.answer_claimed_more = None, False

    def probed(self, acked_seq: int, asked_at: int) -> int | None:
        """A heartbeat saw the secondary's acked seq: a hint, never counted. Ignored while a batch is
        in flight (it will answer) or if the probe was asked before the last batch was answered or
        failed unanswered (the node may have read its seq before storing that batch). A seq other
        than the verified one makes the next batch a handshake there; one below the verified seq
        (the node lost entries) lowers it at once. Returns the verified seq to report if it changed."""
        if self.phase in (Phase.SENDING, Phase.BROKEN) or asked_at < self.fresh_after:
            return None
        if acked_seq == self.acked_seq or (self.known and acked_seq == self.reported_seq):
            self.reported_seq = acked_seq
            return None  # nothing new: what the last answer said
        self.reported_seq = acked_seq
        self.known, self.guess = False, None
        if acked_seq < self.acked_seq:
            self.acked_seq = acked_seq
            return acked_seq
        return None

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

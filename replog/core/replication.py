"""One secondary link's replication state machine: pure, driven by the link actor.

At most one batch is in flight per link, always starting right after the secondary's acked seq, so
entries arrive in order and a lost answer only causes a resend that the secondary deduplicates.
While the secondary's acked seq is unknown (at start, or after it could not be reached, when it may
have restarted), the next batch is an empty handshake that returns it, so a restarted secondary is
sent only what it lacks.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Phase(enum.Enum):
    IDLE = "idle"  # nothing in flight; sends when there is something to send
    SENDING = "sending"  # one batch in flight
    BACKING_OFF = "backing_off"  # last attempt failed; a timer (or a Healthy node) ends the wait


@dataclass
class LinkState:
    acked_seq: int = 0
    known: bool = False  # whether acked_seq is what the secondary last told us
    phase: Phase = Phase.IDLE
    attempt: int = 0  # consecutive failed attempts
    last_error: str | None = None
    fresh_after: int = 0  # event stamp of the last batch outcome: a probe asked before it is old news

    def next_from(self, stored_seq: int) -> int | None:
        """First seq of the next batch, or None if the link must not send now.

        While `known` is False the batch must be empty (a handshake)."""
        if self.phase is Phase.IDLE and self.acked_seq < stored_seq:
            return self.acked_seq + 1
        return None

    def sending(self) -> None:
        assert self.phase is Phase.IDLE, self.phase
        self.phase = Phase.SENDING

    def succeeded(self, acked_seq: int, answered_at: int = 0) -> None:
        """The secondary answered; its acked seq may be lower than we thought (it lost its log)."""
        self.fresh_after = max(self.fresh_after, answered_at)
        self.acked_seq = acked_seq
        self.known = True
        self.phase = Phase.IDLE
        self.attempt = 0
        self.last_error = None

    def failed(self, error: str, *, answered: bool, failed_at: int = 0) -> int:
        """Returns the attempt number for the backoff schedule.

        `answered` False (no HTTP answer) means the node may have restarted: learn its acked seq again,
        from a handshake or from a probe asked after `failed_at` (one asked earlier may have read the
        node before it stored, and died with, the batch that just failed).
        """
        if not answered:
            self.fresh_after = max(self.fresh_after, failed_at)
        self.phase = Phase.BACKING_OFF
        self.known = self.known and answered
        self.attempt += 1
        self.last_error = error
        return self.attempt

    def retry_due(self) -> bool:
        """A backoff timer fired or the node came back: send again now."""
        if self.phase is Phase.BACKING_OFF:
            self.phase = Phase.IDLE
            return True
        return False

    def probed(self, acked_seq: int, asked_at: int) -> bool:
        """Adopt the acked seq a heartbeat saw, unless a batch is in flight (it will answer) or the
        probe was asked before the last batch was answered or failed unanswered: the node may have
        read its seq before storing that batch, and adopting it would resend what it holds. A lost
        log still shows in the next probe."""
        if self.phase is Phase.SENDING or asked_at < self.fresh_after:
            return False
        changed = acked_seq != self.acked_seq
        self.acked_seq, self.known = acked_seq, True
        return changed

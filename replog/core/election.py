"""Roles, epochs and votes: the election rules of cluster mode, as one pure state machine.

Raft's rules (§5.2, §5.4.1) applied to replog, plus leader stickiness: a node that heard from a
live master within the minimum election timeout neither votes for nor is disturbed by a candidate,
so a node that was merely cut off cannot depose a healthy master when it comes back.

Every method takes `now` (seconds on a monotonic clock) and returns the effects the caller must
carry out, in order. `Persist` always comes first and must be durable (fsynced) before any effect
after it is carried out or any answer leaves the node: a vote or an epoch that was acted on is
never forgotten by a crash. Static mode is the same machine with `can_stand=False`: a static
secondary follows whoever replicates to it; a static master is started as master and never
stands down.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from replog.core.epochs import Position, at_least_as_up_to_date
from replog.core.quorum import majority


class Role(enum.Enum):
    MASTER = "master"
    SECONDARY = "secondary"
    CANDIDATE = "candidate"


@dataclass(frozen=True, slots=True)
class ElectionConfig:
    me: str
    members: tuple[str, ...]  # every member, this node included
    can_stand: bool = True  # False: static mode, never a candidate
    min_timeout_s: float = 1.5
    max_timeout_s: float = 3.0

    def __post_init__(self) -> None:
        if self.me not in self.members:
            raise ValueError(f"this node ({self.me}) is not in the member list {list(self.members)}")
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"the member list names a node twice: {list(self.members)}")
        if not 0 < self.min_timeout_s <= self.max_timeout_s:
            raise ValueError("need 0 < min election timeout <= max election timeout")

    @property
    def majority(self) -> int:
        return majority(len(self.members))

    @property
    def others(self) -> tuple[str, ...]:
        return tuple(m for m in self.members if m != self.me)


# ---- effects ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Persist:
    """Make (epoch, vote) durable before anything after this effect happens."""

    epoch: int
    voted_for: str | None


@dataclass(frozen=True, slots=True)
class RequestVotes:
    """Ask every other member for its vote in `epoch`, in parallel, for a candidate at `last`."""

    epoch: int
    last: Position


@dataclass(frozen=True, slots=True)
class BecomeMaster:
    """This node won `epoch`: append the epoch-start record, start replicating, take writes."""

    epoch: int


@dataclass(frozen=True, slots=True)
class StepDown:
    """This node is no longer master (or candidate): stop the term, fail its waiting writers."""

    epoch: int
    master: str | None


Effect = Persist | RequestVotes | BecomeMaster | StepDown


@dataclass(frozen=True, slots=True)
class VoteAnswer:
    epoch: int
    granted: bool
    reason: str


# ---- the machine --------------------------------------------------------------------------------


@dataclass
class Election:
    """One node's view: its epoch, vote, role and the master it follows.

    Build it with the durable (epoch, voted_for) read at start. `role` is MASTER only for a static
    master (with the new epoch it chose); every cluster-mode node starts as a secondary.
    """

    config: ElectionConfig
    epoch: int
    voted_for: str | None
    role: Role = Role.SECONDARY
    master: str | None = None
    heard_master_at: float | None = None  # when a master of this epoch was last heard
    deadline: float = 0.0  # when a secondary or candidate stands (again)
    votes: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.epoch < 0:
            raise ValueError("epoch must be >= 0")
        if self.role is Role.CANDIDATE:
            raise ValueError("a node never starts as a candidate")
        if self.role is Role.MASTER:
            self.master = self.config.me

    # -- timers --------------------------------------------------------------------------------

    def start(self, now: float, rng: random.Random, *, stand_now: bool = False) -> list[Effect]:
        """Arm the first election timeout; a static master claims its epoch durably.

        `stand_now`: the `--role master` node of a fresh cluster stands at its first tick instead
        of after a timeout. It still needs a majority, so two nodes both told they are the first
        master can never both win epoch 1."""
        if self.role is Role.MASTER:
            if self.epoch < 1:
                raise ValueError("a master needs an epoch >= 1")
            self.voted_for = self.config.me
            return [Persist(self.epoch, self.voted_for), BecomeMaster(self.epoch)]
        self.deadline = (
            now if stand_now else now + rng.uniform(self.config.min_timeout_s, self.config.max_timeout_s)
        )
        return []

    def tick(self, now: float, rng: random.Random, last: Position) -> list[Effect]:
        """Stand for election when the timeout passed without a master (cluster mode only)."""
        if self.role is Role.MASTER or not self.config.can_stand or now < self.deadline:
            return []
        self.epoch += 1
        self.role, self.master, self.voted_for = Role.CANDIDATE, None, self.config.me
        self.votes = {self.config.me}
        self._arm(now, rng)
        effects: list[Effect] = [Persist(self.epoch, self.voted_for)]
        if len(self.votes) >= self.config.majority:  # a cluster of one
            return [*effects, *self._win()]
        return [*effects, RequestVotes(self.epoch, last)]

    def _arm(self, now: float, rng: random.Random) -> None:
        self.deadline = now + rng.uniform(self.config.min_timeout_s, self.config.max_timeout_s)

    def master_alive(self, now: float) -> bool:
        """Heard from a live master (or is one) within the minimum election timeout."""
        if self.role is Role.MASTER:
            return True
        return self.heard_master_at is not None and now - self.heard_master_at < self.config.min_timeout_s

    # -- votes ---------------------------------------------------------------------------------

    def vote_requested(
        self,
        now: float,
        rng: random.Random,
        epoch: int,
        candidate: str,
        candidate_last: Position,
        my_last: Position,
    ) -> tuple[VoteAnswer, list[Effect]]:
        """Decide a vote. Grant at most one per epoch, only to a log at least as up to date as
        ours, and never while a live master is heard (stickiness: such a request does not even
        raise our epoch)."""
        if candidate not in self.config.members:
            return VoteAnswer(self.epoch, False, f"{candidate} is not a member"), []
        if epoch < self.epoch:
            return VoteAnswer(self.epoch, False, f"stale epoch {epoch} < {self.epoch}"), []
        if self.master_alive(now) and candidate != self.master:
            return VoteAnswer(self.epoch, False, f"master {self.master} is alive"), []
        effects = self._adopt(epoch) if epoch > self.epoch else []
        if self.voted_for not in (None, candidate):
            return VoteAnswer(self.epoch, False, f"already voted for {self.voted_for}"), effects
        if not at_least_as_up_to_date(candidate_last, my_last):
            return VoteAnswer(
                self.epoch, False, f"candidate log {candidate_last} is behind ours {my_last}"
            ), effects
        self.voted_for = candidate
        self._arm(now, rng)  # a node that just voted gives the candidate time to win
        effects = [e for e in effects if not isinstance(e, Persist)]
        return VoteAnswer(self.epoch, True, "granted"), [Persist(self.epoch, candidate), *effects]

    def vote_answered(self, epoch: int, voter: str, answer: VoteAnswer) -> list[Effect]:
        """Count a vote; a higher epoch in the answer ends our candidacy."""
        if answer.epoch > self.epoch:
            return self._adopt(answer.epoch)
        if self.role is not Role.CANDIDATE or epoch != self.epoch or not answer.granted:
            return []  # a late or refused answer
        if voter not in self.config.members:
            return []
        self.votes.add(voter)
        return self._win() if len(self.votes) >= self.config.majority else []

    def _win(self) -> list[Effect]:
        self.role, self.master = Role.MASTER, self.config.me
        return [BecomeMaster(self.epoch)]

    # -- masters -------------------------------------------------------------------------------

    def heard_from_master(
        self, now: float, rng: random.Random, epoch: int, master: str
    ) -> tuple[bool, list[Effect]]:
        """A replicate or heartbeat call from `master` in `epoch`. False: refuse it (stale)."""
        if epoch < self.epoch:
            return False, []
        if self.role is Role.MASTER and epoch == self.epoch and master != self.config.me:
            raise AssertionError(f"two masters in epoch {epoch}: {self.config.me} and {master}")
        effects = self._adopt(epoch) if epoch > self.epoch else []
        if self.role is Role.CANDIDATE:
            self.role = Role.SECONDARY
            effects.append(StepDown(self.epoch, master))
        if self.master != master:
            self.master = master
        self.heard_master_at = now
        self._arm(now, rng)
        return True, effects

    def saw_epoch(self, epoch: int) -> list[Effect]:
        """Any internal answer or request carried `epoch`: a higher one is adopted at once."""
        return self._adopt(epoch) if epoch > self.epoch else []

    def _adopt(self, epoch: int) -> list[Effect]:
        """Move to a higher epoch as a secondary with no vote and no known master yet."""
        was = self.role
        self.epoch, self.voted_for, self.master, self.votes = epoch, None, None, set()
        self.heard_master_at = None
        effects: list[Effect] = [Persist(epoch, None)]
        if was is not Role.SECONDARY:
            self.role = Role.SECONDARY
            effects.append(StepDown(epoch, None))
        return effects


def lease_deadline(contact_sent_at: Mapping[str, float], config: ElectionConfig) -> float | None:
    """Until when a master may take writes: the minimum election timeout after the moment it
    *sent* the newest request that a majority (itself included) has answered.

    No secondary can start an election before `min_timeout_s` has passed since it last heard from
    the master, which was after that send; so the lease ends before any other master can exist.
    None: a majority has never answered."""
    needed = config.majority - 1  # the master counts itself
    if needed == 0:
        return float("inf")
    times = sorted((t for m, t in contact_sent_at.items() if m in config.others), reverse=True)
    if len(times) < needed:
        return None
    return times[needed - 1] + config.min_timeout_s

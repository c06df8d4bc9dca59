"""The election actor of cluster mode: carries out what the pure `core.election.Election` decides.

It owns the node's `Election` (role, epoch, vote, the master it follows) and nothing else decides
them. Every event comes in as a message: a tick of the election timer, a vote request from a
candidate (`POST /vote`), a vote answer, a call from a master (replicate, probe), or any internal
answer that carried an epoch. The actor feeds it to the machine and carries out the effects in
order:

- `Persist` is written through the store's `save_term` (fsynced) *before* any later effect and
  before a vote answer leaves the node. If it fails, the rest of the effects are dropped and a vote
  request is refused: nothing is ever acted on that a crash could make the node forget. (The
  machine's memory may then be ahead of the disk; that only makes it stricter: it never votes twice
  in an epoch it holds in memory, and a later `Persist` writes a higher epoch.)
- `RequestVotes` goes to one worker thread per other member, so a slow or dead member never blocks
  the actor; answers come back as `VoteReplied`.
- `BecomeMaster` and `StepDown` go to the `RoleListener`, which must not block (it tells the actor
  that owns the node's role).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from replog.actors.base import ReplogActor
from replog.actors.threads import Worker, tell_quietly
from replog.core.election import (
    BecomeMaster,
    Effect,
    Election,
    Persist,
    RequestVotes,
    StepDown,
    VoteAnswer,
)
from replog.core.epochs import Position
from replog.core.votes import VoteRequest
from replog.logs import node_logger
from replog.net.transport import TransportError


class Voter(Protocol):
    """Another member as a candidate sees it (`HttpPeer` in production, a fake in tests)."""

    def request_vote(self, request: VoteRequest) -> VoteAnswer:
        """POST /vote; raise TransportError if there is no valid answer in time."""
        ...

    def close(self) -> None: ...


class TermStore(Protocol):
    """The part of the store the election needs: the durable (epoch, vote) and the log's end."""

    def save_term(self, epoch: int, vote_for: str | None, *, if_last: Position | None = None) -> None: ...

    def last_position(self) -> Position: ...


class RoleListener(Protocol):
    """Who switches the node between master and secondary. Called on the actor's thread: tell,
    never block."""

    def became_master(self, epoch: int) -> None: ...

    def stepped_down(self, epoch: int, master: str | None) -> None: ...


@dataclass(frozen=True, slots=True)
class Start:
    """Arm the first election timeout (or claim a static master's epoch). `stand_now`: the
    `--role master` node of a fresh cluster stands at once instead of after a timeout."""

    stand_now: bool = False


class Tick:
    """The election timer: stand for election if the timeout passed without a master."""


@dataclass(frozen=True, slots=True)
class VoteAsked:
    """A candidate's `POST /vote` (asked: the answer is the `VoteAnswer` to send back)."""

    request: VoteRequest


@dataclass(frozen=True, slots=True)
class VoteReplied:
    """A member answered our vote request of `epoch` (or did not: `answer` None, with the error)."""

    epoch: int
    voter: str
    answer: VoteAnswer | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class MasterCalled:
    """A replicate or probe call from `master` in `epoch` (asked: True to accept it, False if stale)."""

    epoch: int
    master: str


@dataclass(frozen=True, slots=True)
class SawEpoch:
    """An internal answer carried `epoch`: a higher one is adopted at once."""

    epoch: int


class Describe:
    """Ask for the election's view, for /health."""


class ElectionActor(ReplogActor):
    def __init__(
        self,
        election: Election,
        store: TermStore,
        voters: Mapping[str, Voter],
        roles: RoleListener,
        clock: Callable[[], float],
        rng: random.Random,
        name: str | None = None,
    ) -> None:
        """`name`: the node's name in log lines (default: its member URL)."""
        super().__init__()
        if set(voters) != set(election.config.others):
            others = list(election.config.others)
            raise ValueError(f"need one voter per other member {others}, got {sorted(voters)}")
        self._election, self._store, self._voters, self._roles = election, store, voters, roles
        self._clock, self._rng = clock, rng
        self._log = node_logger(__name__, name or election.config.me)
        self._workers: dict[str, Worker] = {}

    def on_start(self) -> None:
        self._workers = {url: Worker(f"vote-{url}") for url in self._voters}

    def on_stop(self) -> None:
        for worker in self._workers.values():
            worker.stop()
        for voter in self._voters.values():
            voter.close()

    def handle(self, message: Any) -> Any:
        now = self._clock()
        match message:
            case Start(stand_now):
                self._carry_out(self._election.start(now, self._rng, stand_now=stand_now))
            case Tick():
                self._carry_out(self._election.tick(now, self._rng, self._store.last_position()))
            case VoteAsked(request):
                return self._vote(now, request)
            case VoteReplied(epoch, voter, answer, error):
                self._replied(epoch, voter, answer, error)
            case MasterCalled(epoch, master):
                accepted, effects = self._election.heard_from_master(now, self._rng, epoch, master)
                return accepted and self._carry_out(effects)
            case SawEpoch(epoch):
                self._carry_out(self._election.saw_epoch(epoch))
            case Describe():
                return self._describe(now)
        return None

    # events ---------------------------------------------------------------------------------------
    def _vote(self, now: float, request: VoteRequest) -> VoteAnswer:
        my_last = self._store.last_position()
        answer, effects = self._election.vote_requested(
            now, self._rng, request.epoch, request.candidate, request.last, my_last
        )
        # A granted vote is saved only if the log still ends at my_last: a batch that lands in
        # between could be acknowledged to the old master while this vote elects a log without it.
        if not self._carry_out(effects, if_last=my_last if answer.granted else None):
            return VoteAnswer(self._election.epoch, False, "this node cannot persist its vote")
        if answer.granted:
            self._log.info("vote granted epoch=%d candidate=%s", answer.epoch, request.candidate)
        else:
            self._log.debug("vote refused epoch=%d candidate=%s reason=%s", request.epoch, request.candidate,
                            answer.reason)  # fmt: skip
        return answer

    def _replied(self, epoch: int, voter: str, answer: VoteAnswer | None, error: str | None) -> None:
        if answer is None:
            self._log.debug("no vote answer epoch=%d voter=%s error=%s", epoch, voter, error)
            return
        self._carry_out(self._election.vote_answered(epoch, voter, answer))

    # effects --------------------------------------------------------------------------------------
    def _carry_out(self, effects: list[Effect], *, if_last: Position | None = None) -> bool:
        """Each effect in order; False (and the rest dropped) if a Persist failed. `if_last`: the
        Persist holds only if the log still ends there (a vote)."""
        for effect in effects:
            match effect:
                case Persist(epoch, voted_for):
                    try:
                        self._store.save_term(epoch, voted_for, if_last=if_last)
                    except Exception as exc:  # a full or failing disk: act on nothing unpersisted
                        self._log.error("cannot persist epoch=%d vote=%s error=%s", epoch, voted_for, exc)
                        return False
                case RequestVotes(epoch, last):
                    self._log.info("standing for election epoch=%d last_seq=%d last_epoch=%d",
                                   epoch, last.seq, last.epoch)  # fmt: skip
                    request = VoteRequest(epoch, self._election.config.me, last)
                    for url, worker in self._workers.items():
                        worker.submit(functools.partial(self._ask_vote, url, request))
                case BecomeMaster(epoch):
                    self._log.warning("elected master epoch=%d", epoch)
                    self._roles.became_master(epoch)
                case StepDown(epoch, master):
                    self._log.warning("stepped down epoch=%d master=%s", epoch, master)
                    self._roles.stepped_down(epoch, master)
        return True

    def _ask_vote(self, url: str, request: VoteRequest) -> None:
        """Runs on the member's vote worker thread."""
        try:
            answer = self._voters[url].request_vote(request)
        except TransportError as exc:
            tell_quietly(self.actor_ref, VoteReplied(request.epoch, url, None, str(exc)))
            return
        tell_quietly(self.actor_ref, VoteReplied(request.epoch, url, answer))

    def _describe(self, now: float) -> dict[str, Any]:
        e = self._election
        return {
            "role": e.role.value,
            "epoch": e.epoch,
            "voted_for": e.voted_for,
            "master": e.master,
            "master_alive": e.master_alive(now),
        }

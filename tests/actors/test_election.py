"""The election actor with in-process voters and a settable clock: it carries out the pure
machine's effects in order, persists before it answers, and never blocks on a member."""

from __future__ import annotations

import random
import threading
from typing import Any

import pykka
import pytest

from replog.actors.election import (
    Describe,
    ElectionActor,
    MasterCalled,
    SawEpoch,
    Start,
    Tick,
    VoteAsked,
    VoteReplied,
)
from replog.core.election import Election, ElectionConfig, VoteAnswer
from replog.core.epochs import Position
from replog.core.votes import VoteRequest
from replog.net.transport import TransportError
from replog.storage.store import MemoryStore
from tests.actors.fakes import FakeClock
from tests.conftest import wait_for

# A fresh store is at epoch 1 (static mode's first epoch): the first election is for epoch 2.
MEMBERS = ("http://a", "http://b", "http://c")
TIMEOUT = 5.0


class Roles:
    """Records role changes, as the node's role owner would receive them."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, int, str | None]] = []

    def became_master(self, epoch: int) -> None:
        self.changes.append(("master", epoch, None))

    def stepped_down(self, epoch: int, master: str | None) -> None:
        self.changes.append(("secondary", epoch, master))


class LocalVoter:
    """Another member's election actor, asked in process (or failing, when `down` is set)."""

    def __init__(self) -> None:
        self.target: pykka.ActorRef[Any] | None = None
        self.down = threading.Event()
        self.asked: list[VoteRequest] = []

    def request_vote(self, request: VoteRequest) -> VoteAnswer:
        self.asked.append(request)
        if self.down.is_set() or self.target is None:
            raise TransportError("connection refused")
        answer: VoteAnswer = self.target.ask(VoteAsked(request), timeout=TIMEOUT)
        return answer

    def close(self) -> None:
        pass


class FailingStore(MemoryStore):
    """A store whose disk refuses to persist a term."""

    def save_term(self, epoch: int, vote_for: str | None, **_: object) -> None:
        raise OSError(28, "No space left on device")


def start_member(me: str, clock: FakeClock, store: MemoryStore | None = None, seed: int = 0,
                 ) -> tuple[pykka.ActorRef[Any], MemoryStore, Roles, dict[str, LocalVoter]]:
    store = store or MemoryStore()
    config = ElectionConfig(me, MEMBERS, min_timeout_s=1.5, max_timeout_s=3.0)
    voters = {url: LocalVoter() for url in config.others}
    roles = Roles()
    election = Election(config, store.epoch, None)
    ref = ElectionActor.start(election, store, voters, roles, clock, random.Random(seed))
    ref.ask(Start(), timeout=TIMEOUT)
    return ref, store, roles, voters


@pytest.fixture
def cluster() -> dict[str, Any]:
    clock = FakeClock()
    members = {url: start_member(url, clock, seed=i) for i, url in enumerate(MEMBERS)}
    for _, _, _, voters in members.values():
        for url, voter in voters.items():
            voter.target = members[url][0]
    return {"clock": clock, "members": members}


def test_the_first_to_time_out_wins_a_majority_and_every_vote_is_durable(cluster: dict[str, Any]) -> None:
    clock, members = cluster["clock"], cluster["members"]
    a_ref, a_store, a_roles, _ = members["http://a"]
    clock.advance(3.1)  # past every member's timeout; only a is ticked
    a_ref.tell(Tick())
    wait_for(lambda: a_roles.changes == [("master", 2, None)], TIMEOUT, "a elected")
    assert a_store.epoch == 2 and a_store.vote is not None and a_store.vote.candidate == "http://a"
    granted = [url for url in ("http://b", "http://c") if (v := members[url][1].vote) and v.candidate == "http://a"]
    assert granted, "a majority of 3 needs one other vote, persisted by its voter"
    assert a_ref.ask(Describe(), timeout=TIMEOUT)["role"] == "master"


def test_a_vote_is_not_granted_when_it_cannot_be_persisted() -> None:
    clock = FakeClock()
    ref, _, _, _ = start_member("http://b", clock, store=FailingStore())
    answer = ref.ask(VoteAsked(VoteRequest(1, "http://a", Position(0, 0))), timeout=TIMEOUT)
    assert answer.granted is False and "persist" in answer.reason


def test_unreachable_members_leave_a_candidate_standing_again_with_a_higher_epoch() -> None:
    clock = FakeClock()
    ref, store, roles, voters = start_member("http://a", clock)
    for voter in voters.values():
        voter.down.set()
    clock.advance(3.1)
    ref.tell(Tick())
    wait_for(lambda: all(len(v.asked) == 1 for v in voters.values()), TIMEOUT, "both asked once")
    assert ref.ask(Describe(), timeout=TIMEOUT)["role"] == "candidate"
    clock.advance(3.1)
    ref.tell(Tick())
    wait_for(lambda: all(len(v.asked) == 2 for v in voters.values()), TIMEOUT, "both asked again")
    assert [r.epoch for r in voters["http://b"].asked] == [2, 3] and store.epoch == 3
    assert roles.changes == []


def test_a_master_that_hears_a_higher_epoch_steps_down_and_refuses_a_stale_one() -> None:
    clock = FakeClock()
    ref, store, roles, voters = start_member("http://a", clock)
    for voter in voters.values():
        voter.target = None  # no answers: a wins only by a granted answer below
    clock.advance(3.1)
    ref.tell(Tick())
    wait_for(lambda: ref.ask(Describe(), timeout=TIMEOUT)["role"] == "candidate", TIMEOUT, "candidate")
    ref.tell(VoteReplied(2, "http://b", VoteAnswer(2, True, "granted")))
    wait_for(lambda: roles.changes == [("master", 2, None)], TIMEOUT, "a elected")

    assert ref.ask(MasterCalled(3, "http://c"), timeout=TIMEOUT) is True
    assert roles.changes[-1] == ("secondary", 3, None) and store.epoch == 3
    assert ref.ask(MasterCalled(2, "http://b"), timeout=TIMEOUT) is False  # a deposed master's call
    view = ref.ask(Describe(), timeout=TIMEOUT)
    assert view["role"] == "secondary" and view["master"] == "http://c" and view["master_alive"] is True


def test_no_vote_while_a_live_master_is_heard_and_a_higher_epoch_is_adopted() -> None:
    clock = FakeClock()
    ref, store, _, _ = start_member("http://b", clock)
    assert ref.ask(MasterCalled(1, "http://a"), timeout=TIMEOUT) is True
    answer = ref.ask(VoteAsked(VoteRequest(2, "http://c", Position(1, 5))), timeout=TIMEOUT)
    assert answer.granted is False and "alive" in answer.reason and store.epoch == 1
    clock.advance(1.6)  # past the minimum election timeout: the master is no longer live
    answer = ref.ask(VoteAsked(VoteRequest(2, "http://c", Position(1, 5))), timeout=TIMEOUT)
    assert answer.granted is True and store.epoch == 2 and store.vote is not None
    ref.tell(SawEpoch(7))
    wait_for(lambda: store.epoch == 7, TIMEOUT, "epoch 7 adopted")


def test_one_voter_per_other_member_is_required() -> None:
    config = ElectionConfig("http://a", MEMBERS)
    with pytest.raises(ValueError, match="one voter per other member"):
        ElectionActor(Election(config, 0, None), MemoryStore(), {}, Roles(), FakeClock(), random.Random(0))


class MovingStore(MemoryStore):
    """A store into which a batch lands between the vote's decision and its save."""

    def last_position(self) -> Position:
        decided = super().last_position()
        self.append(["landed meanwhile"])
        return decided


def test_a_vote_is_not_granted_when_a_batch_landed_while_it_was_decided() -> None:
    clock = FakeClock()
    ref, store, _, _ = start_member("http://b", clock, store=MovingStore())
    answer = ref.ask(VoteAsked(VoteRequest(2, "http://a", Position(0, 0))), timeout=TIMEOUT)
    assert answer.granted is False and "persist" in answer.reason
    assert store.vote is None

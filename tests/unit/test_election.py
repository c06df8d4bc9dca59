"""The election rules: votes, epochs, stickiness, stepping down, the master's lease."""

from __future__ import annotations

import random

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from replog.core.election import (
    BecomeMaster,
    Election,
    ElectionConfig,
    Persist,
    RequestVotes,
    Role,
    StepDown,
    VoteAnswer,
    lease_deadline,
)
from replog.core.epochs import EMPTY, Position

A, B, C = "http://a", "http://b", "http://c"
MEMBERS = (A, B, C)
RNG = random.Random(1)


def node(me: str = A, epoch: int = 0, voted_for: str | None = None, **config: object) -> Election:
    election = Election(ElectionConfig(me, MEMBERS, **config), epoch, voted_for)  # type: ignore[arg-type]
    election.start(0.0, RNG)
    return election


def test_config_refuses_a_node_outside_the_members_or_a_member_twice() -> None:
    with pytest.raises(ValueError, match="not in the member list"):
        ElectionConfig("http://x", MEMBERS)
    with pytest.raises(ValueError, match="twice"):
        ElectionConfig(A, (A, B, B))
    assert ElectionConfig(A, MEMBERS).majority == 2
    assert ElectionConfig(A, MEMBERS).others == (B, C)


def test_a_secondary_stands_after_its_timeout_votes_for_itself_durably_first() -> None:
    a = node()
    assert a.tick(1.0, RNG, EMPTY) == []  # before the timeout (1.5 s at least)
    effects = a.tick(3.0, RNG, Position(1, 4))
    assert effects == [Persist(1, A), RequestVotes(1, Position(1, 4))]
    assert (a.role, a.epoch, a.voted_for, a.master) == (Role.CANDIDATE, 1, A, None)


def test_a_static_secondary_never_stands() -> None:
    a = node(can_stand=False)
    assert a.tick(1e9, RNG, EMPTY) == []
    assert a.role is Role.SECONDARY


def test_the_first_master_of_a_fresh_cluster_stands_at_once_but_still_needs_votes() -> None:
    a = Election(ElectionConfig(A, MEMBERS), 0, None)
    assert a.start(0.0, RNG, stand_now=True) == []
    assert a.tick(0.0, RNG, EMPTY) == [Persist(1, A), RequestVotes(1, EMPTY)]
    assert a.role is Role.CANDIDATE


def test_a_static_master_claims_its_epoch_durably() -> None:
    a = Election(ElectionConfig(A, MEMBERS, can_stand=False), 3, None, role=Role.MASTER)
    assert a.start(0.0, RNG) == [Persist(3, A), BecomeMaster(3)]
    assert a.master == A and a.master_alive(1e9)
    with pytest.raises(ValueError):
        Election(ElectionConfig(A, MEMBERS), 0, None, role=Role.MASTER).start(0.0, RNG)


def test_a_majority_of_all_members_wins() -> None:
    a = node()
    a.tick(5.0, RNG, EMPTY)
    assert a.vote_answered(1, B, VoteAnswer(1, False, "no")) == []
    assert a.vote_answered(1, C, VoteAnswer(1, True, "granted")) == [BecomeMaster(1)]
    assert (a.role, a.master) == (Role.MASTER, A)
    # late answers change nothing
    assert a.vote_answered(1, B, VoteAnswer(1, True, "granted")) == []


def test_a_late_answer_from_an_earlier_candidacy_is_not_counted() -> None:
    a = node()
    a.tick(5.0, RNG, EMPTY)  # epoch 1
    a.tick(50.0, RNG, EMPTY)  # split vote: stands again in epoch 2
    assert a.epoch == 2
    assert a.vote_answered(1, B, VoteAnswer(1, True, "granted")) == []
    assert a.role is Role.CANDIDATE


def test_a_higher_epoch_in_an_answer_ends_the_candidacy() -> None:
    a = node()
    a.tick(5.0, RNG, EMPTY)
    assert a.vote_answered(1, B, VoteAnswer(4, False, "stale epoch")) == [Persist(4, None), StepDown(4, None)]
    assert (a.role, a.epoch, a.voted_for) == (Role.SECONDARY, 4, None)


def grant(
    voter: Election, now: float, epoch: int, candidate: str, last: Position, mine: Position = EMPTY
) -> tuple[VoteAnswer, list[object]]:
    answer, effects = voter.vote_requested(now, RNG, epoch, candidate, last, mine)
    return answer, list(effects)


def test_one_vote_per_epoch_made_durable_before_the_answer() -> None:
    b = node(B)
    answer, effects = grant(b, 10.0, 1, A, EMPTY)
    assert answer == VoteAnswer(1, True, "granted") and effects == [Persist(1, A)]
    again, effects = grant(b, 10.0, 1, A, EMPTY)  # the same candidate asking again: still yes
    assert again.granted and effects == [Persist(1, A)]
    other, effects = grant(b, 10.0, 1, C, EMPTY)
    assert not other.granted and "already voted" in other.reason and effects == []


def test_no_vote_for_a_log_behind_ours_but_the_epoch_is_adopted() -> None:
    b = node(B, epoch=2)
    answer, effects = grant(b, 10.0, 3, A, Position(1, 50), mine=Position(2, 1))
    assert not answer.granted and "behind" in answer.reason
    assert effects == [Persist(3, None)] and b.epoch == 3
    answer, _ = grant(b, 10.0, 3, C, Position(2, 1), mine=Position(2, 1))  # equal logs: yes
    assert answer.granted


def test_a_stale_epoch_is_refused_and_changes_nothing() -> None:
    b = node(B, epoch=5, voted_for=C)
    answer, effects = grant(b, 10.0, 4, A, Position(9, 9))
    assert answer == VoteAnswer(5, False, "stale epoch 4 < 5") and effects == []
    assert (b.epoch, b.voted_for) == (5, C)


def test_stickiness_no_vote_and_no_epoch_change_while_a_master_is_heard() -> None:
    b = node(B, epoch=1)
    ok, _ = b.heard_from_master(10.0, RNG, 1, A)
    assert ok
    answer, effects = grant(b, 10.5, 2, C, Position(1, 99))
    assert not answer.granted and "alive" in answer.reason and effects == [] and b.epoch == 1
    answer, _ = grant(b, 12.0, 2, C, Position(1, 99))  # 2 s of silence > 1.5 s: vote
    assert answer.granted and b.epoch == 2


def test_a_master_refuses_votes_and_steps_down_on_a_higher_epoch() -> None:
    a = node()
    a.tick(5.0, RNG, EMPTY)
    a.vote_answered(1, B, VoteAnswer(1, True, "granted"))
    answer, effects = grant(a, 6.0, 2, C, Position(1, 9))
    assert not answer.granted and effects == []
    assert a.saw_epoch(2) == [Persist(2, None), StepDown(2, None)]
    assert a.role is Role.SECONDARY and not a.master_alive(6.0)


def test_a_candidate_that_hears_the_winner_of_its_epoch_follows_it() -> None:
    a = node()
    a.tick(5.0, RNG, EMPTY)
    ok, effects = a.heard_from_master(5.1, RNG, 1, B)
    assert ok and effects == [StepDown(1, B)]
    assert (a.role, a.master, a.voted_for) == (Role.SECONDARY, B, A)


def test_a_call_from_a_deposed_master_is_refused() -> None:
    b = node(B, epoch=3)
    ok, effects = b.heard_from_master(1.0, RNG, 2, A)
    assert not ok and effects == [] and b.master is None


def test_two_masters_in_one_epoch_is_a_bug_that_is_never_hidden() -> None:
    a = node()
    a.tick(5.0, RNG, EMPTY)
    a.vote_answered(1, B, VoteAnswer(1, True, "granted"))
    with pytest.raises(AssertionError, match="two masters"):
        a.heard_from_master(6.0, RNG, 1, C)


def test_hearing_the_master_postpones_the_election() -> None:
    b = node(B)
    b.heard_from_master(10.0, RNG, 1, A)
    assert b.tick(11.0, RNG, EMPTY) == []
    assert b.tick(13.5, RNG, EMPTY)[0] == Persist(2, B)


def test_lease_runs_from_the_send_time_a_majority_answered() -> None:
    config = ElectionConfig(A, MEMBERS, min_timeout_s=1.5)
    assert lease_deadline({}, config) is None
    assert lease_deadline({B: 10.0}, config) == 11.5
    assert lease_deadline({B: 10.0, C: 12.0}, config) == 13.5  # one other is enough out of 3
    five = ElectionConfig(A, (A, B, C, "http://d", "http://e"), min_timeout_s=1.0)
    assert lease_deadline({B: 10.0, C: 12.0}, five) == 11.0  # needs two others: the older send
    assert lease_deadline({A: 99.0, B: 10.0}, five) is None  # itself does not count twice
    assert lease_deadline({}, ElectionConfig(A, (A,))) == float("inf")


# ---- a randomized run of three nodes: never two masters in one epoch --------------------------


ACTIONS = ["tick"] * 4 + ["deliver"] * 4 + ["drop", "heartbeat"]


class Simulation:
    """Three nodes whose vote requests are delivered late, in any order, or lost."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.nodes = {m: Election(ElectionConfig(m, MEMBERS), 0, None) for m in MEMBERS}
        for n in self.nodes.values():
            n.start(0.0, rng)
        self.logs = {m: Position(0, 0) for m in MEMBERS}
        self.in_flight: list[tuple[str, str, int, Position]] = []  # candidate, voter, epoch, log
        self.winners: dict[int, set[str]] = {}

    def tick(self, now: float, name: str) -> None:
        for effect in self.nodes[name].tick(now, self.rng, self.logs[name]):
            if isinstance(effect, RequestVotes):
                self.in_flight += [(name, v, effect.epoch, effect.last) for v in MEMBERS if v != name]

    def deliver(self, now: float, lose: bool) -> None:
        if not self.in_flight:
            return
        candidate, voter, epoch, last = self.in_flight.pop(self.rng.randrange(len(self.in_flight)))
        if lose:
            return
        answer, _ = self.nodes[voter].vote_requested(now, self.rng, epoch, candidate, last, self.logs[voter])
        for effect in self.nodes[candidate].vote_answered(epoch, voter, answer):
            if isinstance(effect, BecomeMaster):
                self.winners.setdefault(effect.epoch, set()).add(candidate)
                self.logs[candidate] = Position(effect.epoch, self.logs[candidate].seq + 1)

    def heartbeat(self, now: float, name: str) -> None:
        master = self.nodes[name]
        epoch = master.epoch
        for other in (m for m in MEMBERS if m != name):
            if master.role is not Role.MASTER:
                return  # it stepped down on an answer: its heartbeat round ends there
            accepted, _ = self.nodes[other].heard_from_master(now, self.rng, epoch, name)
            if accepted:
                self.logs[other] = self.logs[name]  # replication brings the follower up to date
            else:
                master.saw_epoch(self.nodes[other].epoch)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(ACTIONS), st.integers(0, 2), st.floats(0.0, 1.0)), min_size=20, max_size=150
    ),
    st.integers(0, 2**32),
)
def test_never_two_masters_in_one_epoch(steps: list[tuple[str, int, float]], seed: int) -> None:
    """Nodes stand, vote and hear masters in any order, with messages delayed or lost; whatever
    happens, at most one node ever wins a given epoch."""
    sim = Simulation(random.Random(seed))
    now = 0.0
    for action, index, dt in steps:
        now += dt
        name = MEMBERS[index]
        if action == "tick":
            sim.tick(now, name)
        elif action in ("deliver", "drop"):
            sim.deliver(now, lose=action == "drop")
        elif sim.nodes[name].role is Role.MASTER:
            sim.heartbeat(now, name)
        for epoch, who in sim.winners.items():
            assert len(who) <= 1, f"epoch {epoch} has masters {who}"
    event(f"epochs won: {min(len(sim.winners), 3)}")


def test_the_randomized_run_does_elect_masters() -> None:
    """Guard against the property above passing because nobody ever wins."""
    rng = random.Random(3)
    nodes = {m: Election(ElectionConfig(m, MEMBERS), 0, None) for m in MEMBERS}
    for n in nodes.values():
        n.start(0.0, rng)
    effects = nodes[A].tick(10.0, rng, EMPTY)
    assert isinstance(effects[-1], RequestVotes)
    answer, _ = nodes[B].vote_requested(10.0, rng, 1, A, EMPTY, EMPTY)
    assert nodes[A].vote_answered(1, B, answer) == [BecomeMaster(1)]

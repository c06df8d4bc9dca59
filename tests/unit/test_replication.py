"""The link's replication state machine, driven directly: every decision, and every illegal step."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable

import pytest

from replog.core.backoff import BackoffPolicy
from replog.core.epochs import EpochIndex
from replog.core.health import Status
from replog.core.matching import MAX_SEARCH_ROUNDS, Mismatch, Reason
from replog.core.replication import IDLE, IllegalStep, LinkState, Phase, Send, Wait

POLICY = BackoffPolicy(base_s=0.1, cap_s=3.0)


def new(**fields: object) -> LinkState:
    state = LinkState(POLICY, random.Random(0))
    for name, value in fields.items():
        setattr(state, name, value)
    return state


def send(state: LinkState, stored_seq: int, last_seq: int | None = None) -> Send:
    """Decide a send and dispatch it (up to stored_seq, or last_seq)."""
    decision = state.decide(stored_seq)
    assert isinstance(decision, Send), decision
    last = decision.first_seq - 1 if decision.handshake else (last_seq or stored_seq)
    state.dispatched(last)
    return decision


def connected(acked_seq: int = 0) -> LinkState:
    """A link whose handshake was answered with acked_seq."""
    state = new()
    send(state, max(acked_seq, 1))
    state.sent(acked_seq, answered_at=1)
    return state


def fail(state: LinkState, stored_seq: int, **how: bool) -> Wait:
    send(state, stored_seq)
    state.failed("boom", answered=how.get("answered", True), refused=how.get("refused", False))
    wait = state.decide(stored_seq)
    assert isinstance(wait, Wait), wait
    return wait


# decisions ----------------------------------------------------------------------------------------------
def test_a_new_link_handshakes_even_with_nothing_stored() -> None:
    """At start the link must verify the secondary (quorum counts verified links only), and learn
    whether it holds more than this master (issue 11 C8)."""
    state = new()
    assert state.decide(0) == Send(1, handshake=True)
    state.dispatched(0)
    assert state.sent(0) == 0 and state.counted
    assert state.decide(0) is IDLE
    assert state.phase is Phase.IDLE and state.idle


def test_first_send_is_a_handshake_then_batches_start_after_the_acked_seq() -> None:
    state = new()
    assert state.decide(3) == Send(4, handshake=True)  # first guess: it holds all we have
    assert state.phase is Phase.SENDING and not state.idle
    state.dispatched(3)
    assert state.sent(2, answered_at=5) == 2  # it accepted prev_seq 3 yet holds 2 durably: count 2
    assert (state.acked_seq, state.known, state.phase) == (2, True, Phase.IDLE)
    assert state.decide(3) == Send(3, handshake=False)


def test_one_batch_in_flight_at_a_time() -> None:
    state = connected()
    send(state, 5)
    assert state.decide(9) is IDLE
    assert state.sent(5) == 5
    assert state.decide(9) == Send(6, handshake=False)


def test_success_resets_attempts_and_the_last_error() -> None:
    state = connected()
    fail(state, 3)
    state.retry_due(state.generation)
    send(state, 3)
    state.sent(3)
    assert (state.attempt, state.last_error, state.phase) == (0, None, Phase.IDLE)


def test_a_failure_waits_with_growing_backoff_under_a_new_generation() -> None:
    state = connected()
    state.node_status(Status.HEALTHY)
    first = fail(state, 3)
    assert (state.phase, state.attempt, state.last_error) == (Phase.BACKING_OFF, 1, "boom")
    assert POLICY.base_s / 2 <= first.delay_s <= POLICY.base_s
    assert state.decide(3) is IDLE  # the wait is handed out once; nothing is sent meanwhile
    state.retry_due(first.generation)
    second = fail(state, 3)
    assert second.generation == first.generation + 1
    assert POLICY.base_s <= second.delay_s <= 2 * POLICY.base_s


def test_jitter_comes_only_from_the_rng_passed_in() -> None:
    def delays(seed: int) -> list[float]:
        state = LinkState(POLICY, random.Random(seed))
        state.node_status(Status.HEALTHY)
        out = []
        for _ in range(5):
            out.append(fail(state, 1).delay_s)
            state.retry_due(state.generation)
        return out

    assert delays(1) == delays(1) != delays(2)


@pytest.mark.parametrize(
    ("status", "refused", "full"),
    [
        (Status.HEALTHY, False, False),
        (Status.SUSPECTED, False, False),
        (Status.UNHEALTHY, False, True),
        (Status.HEALTHY, True, True),
    ],
)
def test_refused_batches_and_unhealthy_nodes_wait_the_full_cap(
    status: Status, refused: bool, full: bool
) -> None:
    state = connected()
    state.node_status(status)
    wait = fail(state, 1, refused=refused)
    assert (wait.delay_s >= POLICY.cap_s / 2) is full


def test_a_new_link_treats_the_node_as_unhealthy_until_told() -> None:
    assert fail(connected(), 1).delay_s >= POLICY.cap_s / 2


def test_healthy_again_ends_the_backoff_and_makes_the_timer_stale() -> None:
    state = connected()
    wait = fail(state, 2)
    assert state.node_status(Status.SUSPECTED) is False
    assert state.phase is Phase.BACKING_OFF
    assert state.node_status(Status.HEALTHY) is True
    assert state.phase is Phase.IDLE and state.generation == wait.generation + 1
    assert state.decide(2) == Send(1, handshake=False)
    state.dispatched(2)
    state.retry_due(wait.generation)  # the superseded timer fires: ignored
    assert state.phase is Phase.SENDING


def test_healthy_while_not_backing_off_changes_nothing_but_the_wait_length() -> None:
    state = connected()
    assert state.node_status(Status.HEALTHY) is False
    assert (state.phase, state.node_down) == (Phase.IDLE, False)


def test_retry_due_returns_to_idle() -> None:
    state = connected()
    wait = fail(state, 4)
    state.retry_due(wait.generation)
    assert state.phase is Phase.IDLE
    assert state.decide(4) == Send(1, handshake=False)


def test_only_an_unanswered_failure_forgets_the_acked_seq() -> None:
    state = connected(3)
    fail(state, 5, answered=True)
    assert state.known is True
    state.retry_due(state.generation)
    fail(state, 5, answered=False)  # it may have restarted empty
    assert (state.known, state.acked_seq) == (False, 3)
    state.retry_due(state.generation)
    assert state.decide(5) == Send(4, handshake=True)
    state.dispatched(3)
    state.failed("HTTP 500", answered=True)
    assert state.known is False  # an answer to a failed handshake teaches nothing


def test_lower_acked_seq_resends_from_there() -> None:
    state = connected(10)
    send(state, 11)
    state.sent(0)  # the secondary restarted empty
    assert state.decide(11) == Send(1, handshake=False)


def test_resent_entries_are_counted_when_dispatched() -> None:
    state = connected()
    send(state, 3)  # 1..3
    state.failed("HTTP 500", answered=True)
    state.decide(3)
    state.retry_due(state.generation)
    send(state, 5)  # 1..5: 1..3 a second time
    assert state.resent == 3
    state.sent(0)  # it lost its log
    send(state, 5, last_seq=2)  # 1..2 again, capped
    assert (state.resent, state.highest_sent) == (5, 5)


def test_read_failure_backs_off_and_keeps_what_is_known() -> None:
    state = connected(2)
    state.node_status(Status.UNHEALTHY)
    assert state.decide(4) == Send(3, handshake=False)
    state.read_failed("disk hiccup")
    wait = state.decide(4)
    assert isinstance(wait, Wait) and wait.delay_s <= POLICY.base_s  # a local failure: no full cap
    assert (state.phase, state.attempt, state.last_error, state.known) == (
        Phase.BACKING_OFF,
        1,
        "disk hiccup",
        True,
    )


def test_broken_is_final() -> None:
    state = connected()
    state.decide(3)
    state.broken("corrupt log")
    assert (state.phase, state.last_error) == (Phase.BROKEN, "corrupt log")
    assert state.node_status(Status.HEALTHY) is False
    assert state.probed(0, asked_at=99) is None
    state.retry_due(state.generation)
    assert state.decide(3) is IDLE and not state.idle


def test_log_accepted_after_an_answer_until_a_refusal_or_a_silence() -> None:
    state = new()
    assert state.log_accepted is False
    state = connected()
    assert state.log_accepted is True
    fail(state, 1, answered=True)  # a 500: it still holds our log
    assert state.log_accepted is True
    state.retry_due(state.generation)
    fail(state, 1, refused=True)  # e.g. 409 log_id_mismatch
    assert state.log_accepted is False
    state.retry_due(state.generation)
    send(state, 1)
    state.sent(1)
    fail(state, 2, answered=False)  # it may have restarted empty
    assert state.log_accepted is False


# probes ---------------------------------------------------------------------------------------------
def test_a_probe_is_a_hint_that_only_ever_lowers_the_verified_seq() -> None:
    state = connected(4)
    assert state.probed(4, asked_at=1) is None
    assert state.known is True  # confirmed, though unchanged
    assert state.probed(2, asked_at=2) == 2  # it lost entries: count less at once
    assert state.probed(0, asked_at=2) == 0  # a change to 0 is still reported
    assert state.known is False
    assert state.decide(3) == Send(1, handshake=True)  # verify there first
    assert state.probed(3, asked_at=3) is None  # in flight: ignored
    assert state.acked_seq == 0


def test_a_probe_above_the_verified_seq_is_never_counted() -> None:
    state = connected(2)
    assert state.probed(1_000, asked_at=1) is None
    assert (state.acked_seq, state.reported_seq, state.known) == (2, 1_000, False)
    assert state.decide(5) == Send(6, handshake=True), "checked at our last seq, not counted"


def test_a_probe_asked_before_the_last_answer_is_old_news() -> None:
    state = new()
    send(state, 5)
    state.sent(5, answered_at=10)
    assert state.probed(0, asked_at=9) is None  # read before the batch was applied
    assert (state.acked_seq, state.known) == (5, True)
    assert state.probed(0, asked_at=11) == 0  # asked after: the node really lost its log
    send(state, 5)
    state.sent(3, answered_at=7)  # stamps only move forward
    assert state.fresh_after == 10


def test_after_a_send_without_answer_only_a_later_probe_counts() -> None:
    state = connected(40)
    state.fresh_after = 10
    send(state, 50)
    state.failed("connection reset", answered=False, failed_at=20)  # 41..50 may be stored, or not
    assert state.known is False
    assert state.probed(40, asked_at=15) is None  # read before the node stored 41..50 and died
    assert (state.acked_seq, state.known) == (40, False)  # so the next batch is a handshake
    assert state.probed(50, asked_at=25) is None, "a hint, not counted"
    assert (state.acked_seq, state.known, state.reported_seq) == (40, False, 50)
    state.decide(60)
    state.retry_due(state.generation)
    assert send(state, 60) == Send(51, handshake=True), "the handshake starts at the hint"
    assert state.sent(50) == 50
    send(state, 60)
    state.failed("HTTP 500", answered=True, failed_at=30)  # an answer: the node did not restart
    assert state.fresh_after == 20 and state.known is True


# refusals, the search for the match point, conflicts, behind (issue 11 C7, C8) ----------------------
OURS = EpochIndex([(1, 1)])  # static mode: one epoch
GAP_AT_0 = Mismatch(Reason.GAP, 0, 0, ())


def handshake_at(state: LinkState, stored_seq: int, prev: int) -> None:
    assert state.decide(stored_seq) == Send(prev + 1, handshake=True)
    state.dispatched(prev)


def test_a_gap_refusal_answers_at_once_with_the_secondarys_last_seq() -> None:
    state = new()
    handshake_at(state, 100, 100)
    assert state.refused(Mismatch(Reason.GAP, 40, 1, ((1, 1),)), OURS, 100) is None
    assert (state.phase, state.known, state.guess, state.rounds) == (Phase.IDLE, False, 40, 1)
    handshake_at(state, 100, 40)  # no backoff: a search makes progress
    assert state.sent(40) == 40
    assert state.decide(100) == Send(41, handshake=False)
    assert (state.rounds, state.guess, state.counted) == (0, None, True)


def test_an_epoch_refusal_steps_below_the_secondarys_epoch_boundary() -> None:
    state = new()
    handshake_at(state, 10, 10)
    state.refused(Mismatch(Reason.EPOCH, 12, 2, ((1, 1), (2, 6))), OURS, 10)
    handshake_at(state, 10, 5)  # its epoch 2 starts at 6: the logs can agree up to 5 at most


def test_a_refusal_lowers_what_was_counted() -> None:
    state = connected(8)
    send(state, 10)  # 9..10 after prev 8
    assert state.refused(Mismatch(Reason.GAP, 5, 1, ((1, 1),)), OURS, 10) == 5, "it lost 6..8"
    assert state.acked_seq == 5


def test_a_content_refusal_is_a_conflict_that_waits_the_full_cap_and_clears_when_answered_right() -> None:
    state = connected(3)
    state.node_status(Status.HEALTHY)
    send(state, 5)
    assert state.refused(Mismatch(Reason.CONTENT, 9, 1, ((1, 1),)), OURS, 5) == 0
    assert state.conflict is not None and "other content" in state.conflict
    assert (state.counted, state.acked_seq, state.phase) == (False, 0, Phase.BACKING_OFF)
    wait = state.decide(5)
    assert isinstance(wait, Wait) and wait.delay_s >= POLICY.cap_s / 2
    state.retry_due(wait.generation)
    handshake_at(state, 5, 5)  # checked again, from the top (its last seq 9 is above ours)
    assert state.sent(5) == 5  # the node was fixed
    assert (state.conflict, state.counted) == (None, True)


def test_a_search_is_bounded() -> None:
    state = new()
    stored = MAX_SEARCH_ROUNDS + 5
    for round_ in range(MAX_SEARCH_ROUNDS):
        handshake_at(state, stored, stored - round_)
        state.refused(Mismatch(Reason.GAP, stored - round_ - 1, 1, ((1, 1),)), OURS, stored)
    assert state.conflict is None
    handshake_at(state, stored, stored - MAX_SEARCH_ROUNDS)
    state.refused(Mismatch(Reason.GAP, 1, 1, ((1, 1),)), OURS, stored)
    assert state.conflict == f"no match point found in {MAX_SEARCH_ROUNDS} round trips"


@pytest.mark.parametrize(
    ("refusal", "why"),
    [
        (Mismatch(Reason.GAP, 9, 1, ((1, 1),)), "as a gap yet says it holds up to seq 9"),
        (Mismatch(Reason.CONTENT, 3, 1, ((1, 1),)), "other content"),
    ],
)
def test_answers_that_contradict_themselves_are_conflicts(refusal: Mismatch, why: str) -> None:
    state = new()
    handshake_at(state, 5, 5)
    state.refused(refusal, OURS, 5)
    assert state.conflict is not None and why in state.conflict


def test_a_secondary_verified_past_our_last_seq_means_we_are_behind() -> None:
    state = new()
    handshake_at(state, 5, 5)
    assert state.sent(9) == 5, "capped at what the handshake proved"
    assert state.decide(5) is IDLE, "nothing is sent while behind"
    assert (state.behind, state.counted) == (9, True)
    assert state.decide(9) == Send(10, handshake=True), "caught up: checked at its last seq, not resent"
    assert state.behind is None


def test_an_answer_that_claims_more_than_its_handshake_proved_is_checked_there_not_resent() -> None:
    """A node that restarted after storing a batch it never answered: the handshake at its old seq
    says it holds more. Check there (one empty round trip) rather than resend what it holds."""
    state = connected(4)
    send(state, 9)  # 5..9: stored there, the answer lost
    state.failed("connection reset", answered=False)
    assert isinstance(state.decide(9), Wait)
    state.retry_due(state.generation)
    handshake_at(state, 9, 4)  # its last answer said 4
    assert state.sent(9) == 4, "only what the handshake proved counts"
    handshake_at(state, 9, 9)
    assert state.sent(9) == 9
    assert state.decide(9) is IDLE and state.resent == 0


def test_a_claim_refused_where_it_was_checked_is_not_checked_again_but_overwritten() -> None:
    """Cluster mode: an old master back with entries of its own at 3..5 (epoch 1) claims 5; ours
    hold our epoch start at 3 (epoch 2). The check at our seq 3 is refused, the search finds 2, and
    the handshake there says 5 again: the next batch must carry our 3.. (which the secondary rolls
    back for), not check the refuted claim forever (seen looping before the fix)."""
    ours = EpochIndex([(1, 1), (2, 3)])
    state = new()
    handshake_at(state, 3, 3)
    state.refused(Mismatch(Reason.EPOCH, 5, 1, ((1, 1),)), ours, 3)
    handshake_at(state, 3, 2)
    assert state.sent(5) == 2, "only what the handshake proved counts"
    assert state.decide(3) == Send(3, handshake=False)
    state.dispatched(3)
    assert state.sent(3) == 3 and state.counted


def test_a_claim_the_master_could_not_learn_from_is_a_conflict_until_the_claim_changes() -> None:
    state = new()
    handshake_at(state, 5, 5)
    state.sent(1_000)
    assert state.decide(5) is IDLE and state.behind == 1_000
    state.disproved(1_000, "it serves nothing past seq 5")
    assert (state.conflict, state.counted) == ("it serves nothing past seq 5", False)
    assert state.decide(5) is IDLE and state.behind is None, "never learned from again"
    send(state, 6)
    state.sent(1_000)
    assert state.conflict is not None and not state.counted, "the same claim again: still a conflict"
    send(state, 7)
    state.sent(7)  # replaced by an honest node
    assert state.conflict is None and state.counted and state.acked_seq == 7


def test_a_claim_past_our_last_seq_is_checked_at_our_last_seq_before_anything_counts() -> None:
    state = connected(5)
    state.probed(9, asked_at=1)
    assert state.decide(5) == Send(6, handshake=True)
    state.dispatched(5)
    state.refused(Mismatch(Reason.CONTENT, 9, 1, ((1, 1),)), OURS, 5)
    assert (state.behind, state.counted) == (None, False)


# illegal steps ----------------------------------------------------------------------------------------
Step = Callable[[LinkState], object]


def idle() -> LinkState:
    return connected(1)


def decided() -> LinkState:
    state = connected(1)
    state.decide(3)
    return state


def in_flight() -> LinkState:
    state = connected(1)
    send(state, 3)
    return state


def backing_off() -> LinkState:
    state = connected(1)
    fail(state, 3)
    return state


def wait_not_handed_out() -> LinkState:
    state = connected(1)
    send(state, 3)
    state.failed("boom", answered=True)
    return state


def broken() -> LinkState:
    state = decided()
    state.broken("corrupt")
    return state


@pytest.mark.parametrize(
    ("make", "step"),
    [
        (idle, lambda s: s.dispatched(3)),
        (idle, lambda s: s.sent(3)),
        (idle, lambda s: s.failed("x", answered=True)),
        (idle, lambda s: s.read_failed("x")),
        (idle, lambda s: s.broken("x")),
        (decided, lambda s: s.sent(3)),  # no answer before the batch went out
        (decided, lambda s: s.failed("x", answered=False)),
        (decided, lambda s: s.dispatched(1)),  # a batch from 2 cannot end before it
        (in_flight, lambda s: s.dispatched(3)),  # dispatched twice
        (in_flight, lambda s: s.read_failed("x")),
        (in_flight, lambda s: s.broken("x")),
        (backing_off, lambda s: s.sent(3)),
        (backing_off, lambda s: s.failed("x", answered=True)),
        (backing_off, lambda s: s.retry_due(s.generation + 1)),  # a timer never handed out
        (wait_not_handed_out, lambda s: s.retry_due(s.generation)),
        (idle, lambda s: s.retry_due(s.generation)),  # the current timer, with nothing to end
        (broken, lambda s: s.sent(1)),
        (broken, lambda s: s.dispatched(1)),
        (idle, lambda s: s.refused(GAP_AT_0, OURS, 3)),
        (decided, lambda s: s.refused(GAP_AT_0, OURS, 3)),  # refused before it went out
        (backing_off, lambda s: s.refused(GAP_AT_0, OURS, 3)),
        (broken, lambda s: s.refused(GAP_AT_0, OURS, 3)),
    ],
)
def test_an_illegal_step_raises_and_changes_nothing(make: Callable[[], LinkState], step: Step) -> None:
    state = make()
    before = copy.deepcopy(state)
    rng_before = state.rng.getstate()
    with pytest.raises(IllegalStep):
        step(state)
    assert state == before
    assert state.rng.getstate() == rng_before


def test_a_handshake_must_be_empty() -> None:
    state = new()
    assert state.decide(3) == Send(4, handshake=True)
    before = copy.deepcopy(state)
    with pytest.raises(IllegalStep):
        state.dispatched(4)
    assert state == before

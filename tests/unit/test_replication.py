"""The link's replication state machine: one batch in flight, retries, acked seq going down."""

from __future__ import annotations

import pytest

from replog.core.replication import LinkState, Phase


def test_a_new_link_does_not_know_the_secondary_yet() -> None:
    state = LinkState()
    assert state.known is False  # the link's first batch is an empty handshake
    state.sending()
    state.succeeded(7)
    assert (state.acked_seq, state.known) == (7, True)


def test_idle_link_sends_from_after_its_acked_seq() -> None:
    state = LinkState()
    assert state.next_from(0) is None  # nothing stored
    assert state.next_from(3) == 1
    state.sending()
    assert state.phase is Phase.SENDING
    assert state.next_from(5) is None  # one batch in flight at a time


def test_success_moves_acked_and_returns_to_idle() -> None:
    state = LinkState()
    state.sending()
    state.succeeded(3)
    assert (state.acked_seq, state.phase, state.attempt) == (3, Phase.IDLE, 0)
    assert state.next_from(3) is None
    assert state.next_from(5) == 4


def test_sending_twice_is_illegal_and_changes_nothing() -> None:
    state = LinkState()
    state.sending()
    before = LinkState(state.acked_seq, state.known, state.phase, state.attempt, state.last_error)
    with pytest.raises(AssertionError):
        state.sending()
    assert state == before


def test_failures_count_attempts_and_block_sending_until_retry_due() -> None:
    state = LinkState()
    state.sending()
    assert state.failed("boom", answered=True) == 1
    assert state.phase is Phase.BACKING_OFF
    assert state.last_error == "boom"
    assert state.next_from(5) is None
    assert state.retry_due() is True
    assert state.retry_due() is False  # already idle
    state.sending()
    assert state.failed("again", answered=True) == 2
    state.retry_due()
    state.sending()
    state.succeeded(5)
    assert state.attempt == 0
    assert state.last_error is None


def test_only_an_unanswered_failure_forgets_the_acked_seq() -> None:
    state = LinkState()
    state.sending()
    state.succeeded(3)
    state.sending()
    state.failed("HTTP 500", answered=True)
    assert state.known is True
    state.retry_due()
    state.sending()
    state.failed("connection refused", answered=False)  # it may have restarted empty
    assert state.known is False
    assert state.acked_seq == 3
    state.retry_due()
    state.sending()
    state.failed("HTTP 500", answered=True)
    assert state.known is False  # an answer to a failed handshake teaches nothing


def test_retry_due_when_not_backing_off_is_ignored() -> None:
    state = LinkState()
    state.sending()
    assert state.retry_due() is False
    assert state.phase is Phase.SENDING


def test_lower_acked_seq_resends_from_there() -> None:
    state = LinkState(acked_seq=10)
    state.sending()
    state.succeeded(0)  # the secondary restarted empty
    assert state.next_from(11) == 1


def test_probe_adopts_acked_seq_only_when_nothing_is_in_flight() -> None:
    state = LinkState(acked_seq=4)
    assert state.probed(4, asked_at=1) is False
    assert state.known is True  # confirmed, though unchanged
    assert state.probed(2, asked_at=2) is True
    assert state.acked_seq == 2
    state.sending()
    assert state.probed(0, asked_at=3) is False
    assert state.acked_seq == 2


def test_a_probe_asked_before_the_last_answer_is_old_news() -> None:
    state = LinkState()
    state.sending()
    state.succeeded(5, answered_at=10)
    assert state.probed(0, asked_at=9) is False  # read before the batch was applied
    assert (state.acked_seq, state.known) == (5, True)
    assert state.probed(0, asked_at=11) is True  # asked after: the node really lost its log
    assert state.acked_seq == 0
    state.sending()
    state.succeeded(3, answered_at=7)  # stamps only move forward
    assert state.fresh_after == 10


def test_after_a_send_without_answer_only_a_later_probe_counts() -> None:
    state = LinkState()
    state.sending()
    state.succeeded(40, answered_at=10)
    state.sending()
    state.failed("connection reset", answered=False, failed_at=20)  # 41..50 may be stored, or not
    assert state.known is False
    assert state.probed(40, asked_at=15) is False  # read before the node stored 41..50 and died
    assert (state.acked_seq, state.known) == (40, False)  # so the next batch is a handshake
    assert state.probed(50, asked_at=25) is True
    assert (state.acked_seq, state.known) == (50, True)
    state.retry_due()
    state.sending()
    state.failed("HTTP 500", answered=True, failed_at=30)  # an answer: the node did not restart
    assert state.fresh_after == 20 and state.known is True

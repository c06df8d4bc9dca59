"""The vote call's wire format: requests validated field by field, answers checked before counted."""

from __future__ import annotations

import pytest

from replog.core.election import VoteAnswer
from replog.core.epochs import Position
from replog.core.errors import BadRequest
from replog.core.votes import (
    VoteRequest,
    parse_vote_answer,
    parse_vote_request,
    vote_answer_body,
    vote_request_body,
)


def test_a_request_and_an_answer_survive_their_round_trip() -> None:
    request = VoteRequest(4, "http://10.0.0.2:8000", Position(3, 120))
    assert parse_vote_request(vote_request_body(request)) == request
    answer = VoteAnswer(5, False, "already voted for http://c")
    assert parse_vote_answer(vote_answer_body(answer)) == answer


def test_an_empty_log_is_position_zero() -> None:
    body = {"epoch": 2, "candidate": "http://a", "last": {"seq": 0, "epoch": 0}}
    assert parse_vote_request(body).last == Position(0, 0)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"epoch": "2", "candidate": "http://a", "last": {"seq": 0, "epoch": 0}}, "epoch"),
        ({"epoch": 2, "candidate": 7, "last": {"seq": 0, "epoch": 0}}, "candidate"),
        ({"epoch": 2, "candidate": "h" * 3000, "last": {"seq": 0, "epoch": 0}}, "candidate"),
        ({"epoch": 2, "candidate": "http://a", "last": {"seq": -1, "epoch": 0}}, "last.seq"),
        ({"epoch": 2, "candidate": "http://a", "last": {"seq": 0, "epoch": 1}}, "empty log"),
        ({"epoch": 2, "candidate": "http://a", "last": {"seq": 1.0, "epoch": 1}}, "last.seq"),
    ],
)
def test_a_bad_request_names_what_is_wrong(body: dict[str, object], named: str) -> None:
    with pytest.raises(BadRequest, match=named):
        parse_vote_request(body)


@pytest.mark.parametrize(
    "body", [{"granted": True}, {"epoch": 2, "granted": "yes"}, {"epoch": -1, "granted": True}, {}]
)
def test_a_malformed_answer_is_not_a_vote(body: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        parse_vote_answer(body)

"""The vote call of cluster mode on the wire: `POST /vote` between members, validated in one place.

A candidate asks `{"epoch", "candidate", "last": {"seq", "epoch"}}`; the voter answers `{"epoch",
"granted", "reason"}` with its own (possibly higher) epoch, which the candidate adopts at once
(FAILOVER.md §3: every internal answer carries the sender's epoch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from replog.core.election import VoteAnswer
from replog.core.epochs import Position
from replog.core.errors import BadRequest

MAX_URL_CHARS = 2048  # a member URL; longer is not a member of any sane cluster


@dataclass(frozen=True, slots=True)
class VoteRequest:
    """A candidate's request for a vote in `epoch`; `last` is where its log ends."""

    epoch: int
    candidate: str
    last: Position


def _count(value: object, field: str, minimum: int) -> int:
    # bool is an int in Python; a JSON true is not a count.
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BadRequest(f"{field} must be an integer >= {minimum}")
    return value


def parse_vote_request(body: Mapping[str, Any]) -> VoteRequest:
    """The request body, or BadRequest naming the first field that is wrong."""
    candidate = body.get("candidate")
    if not isinstance(candidate, str) or not candidate or len(candidate) > MAX_URL_CHARS:
        raise BadRequest(f"candidate must be a member URL of 1..{MAX_URL_CHARS} characters")
    last = body.get("last")
    if not isinstance(last, Mapping):
        raise BadRequest("last must be an object {seq, epoch}")
    seq, last_epoch = _count(last.get("seq"), "last.seq", 0), _count(last.get("epoch"), "last.epoch", 0)
    if (seq == 0) != (last_epoch == 0):
        raise BadRequest("last is {seq: 0, epoch: 0} for an empty log, else both >= 1")
    return VoteRequest(_count(body.get("epoch"), "epoch", 1), candidate, Position(last_epoch, seq))


def vote_request_body(request: VoteRequest) -> dict[str, Any]:
    last = {"seq": request.last.seq, "epoch": request.last.epoch}
    return {"epoch": request.epoch, "candidate": request.candidate, "last": last}


def vote_answer_body(answer: VoteAnswer) -> dict[str, Any]:
    return {"epoch": answer.epoch, "granted": answer.granted, "reason": answer.reason}


def parse_vote_answer(body: Mapping[str, Any]) -> VoteAnswer:
    """A voter's answer, or ValueError: a malformed answer counts as no answer at all."""
    epoch, granted, reason = body.get("epoch"), body.get("granted"), body.get("reason", "")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"a vote answer needs an integer epoch, got {epoch!r}")
    if not isinstance(granted, bool):
        raise ValueError(f"a vote answer needs a boolean 'granted', got {granted!r}")
    return VoteAnswer(epoch, granted, str(reason)[:200])

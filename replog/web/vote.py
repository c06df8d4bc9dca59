"""`POST /vote`: a candidate asks this member for its vote (cluster mode only).

Internal, like `/replicate`: it needs the cluster secret when one is set. The answer is 200 with
`{"epoch", "granted", "reason"}` whether or not the vote is granted: a refusal is a normal outcome
of an election, not an error. The vote is persisted before the answer leaves (the election actor
does that); `ask_vote` is its `ask`, with a deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bottle

from replog.core.election import VoteAnswer
from replog.core.votes import VoteRequest, parse_vote_request, vote_answer_body
from replog.web.common import json_errors, read_json_body, require_secret

MAX_VOTE_BODY_BYTES = 8192  # a vote request is a few hundred bytes


def add_vote_route(
    app: bottle.Bottle, ask_vote: Callable[[VoteRequest], VoteAnswer], secret: str | None
) -> None:
    @app.post("/vote")
    @json_errors
    def vote() -> dict[str, Any]:
        require_secret(secret)
        request = parse_vote_request(read_json_body(MAX_VOTE_BODY_BYTES))
        return vote_answer_body(ask_vote(request))

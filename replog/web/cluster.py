"""Cluster mode's routes, added to a node's app on top of the secondary's (`/replicate`, reads).

`POST /messages` goes to the node's current master role, or is answered 421 `not_master` naming
the master; `GET /health` shows role, epoch, the master followed and the vote, and, when the caller
is a master probing (its epoch headers present), first checks that master's epoch like
`/replicate` does; `POST /vote` is the election's. The node decides everything; these routes only
parse and answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bottle

from replog.config import MasterConfig
from replog.core.election import VoteAnswer
from replog.core.errors import BadRequest
from replog.core.votes import VoteRequest
from replog.net.transport import EPOCH_HEADER, MASTER_HEADER
from replog.web.common import json_errors, require_secret
from replog.web.master import Append, add_append_route
from replog.web.vote import add_vote_route

MAX_EPOCH = 1 << 62


def term_headers() -> tuple[int, str] | None:
    """The caller's (epoch, master URL) from its headers; None without them; BadRequest if bad."""
    raw_epoch = bottle.request.get_header(EPOCH_HEADER)
    master = bottle.request.get_header(MASTER_HEADER)
    if raw_epoch is None and master is None:
        return None
    if raw_epoch is None or not master:
        raise BadRequest(f"give both {EPOCH_HEADER} and {MASTER_HEADER}, or neither")
    try:
        epoch = int(raw_epoch)
    except ValueError:
        raise BadRequest(f"{EPOCH_HEADER} must be an integer, got {raw_epoch[:40]!r}") from None
    if not 1 <= epoch <= MAX_EPOCH:
        raise BadRequest(f"{EPOCH_HEADER} must be 1..{MAX_EPOCH}")
    return epoch, master


def add_cluster_routes(
    app: bottle.Bottle,
    config: MasterConfig,
    *,
    append: Append,
    describe: Callable[[], dict[str, Any]],
    admit: Callable[[], None],
    ask_vote: Callable[[VoteRequest], VoteAnswer],
) -> None:
    """Routes defined here replace the secondary app's of the same path (Bottle keeps the last)."""

    add_append_route(app, config, append)

    @app.get("/health")
    @json_errors
    def get_health() -> dict[str, Any]:
        if term_headers() is not None:  # a master's probe: it may move this node's epoch, so secret
            require_secret(config.cluster_secret)
            admit()
        return describe()

    add_vote_route(app, ask_vote, config.cluster_secret)

"""The master's HTTP API: append with write concern, read, health.

Each request runs on its own waitress thread: the route validates the body and hands it to the
`Appender` (`replog.service.append`), which blocks only this thread until w is met.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bottle

from replog.config import MasterConfig
from replog.core.wire import AppendRequest, parse_append
from replog.service.append import Appender
from replog.storage.store import Store
from replog.web.common import JsonBottle, json_errors, read_json_body
from replog.web.follow import Followers
from replog.web.openapi import openapi
from replog.web.reads import add_read_routes

IDEMPOTENCY_HEADER = "Idempotency-Key"  # a single append's key; the body's 'id' is its twin

Append = Callable[[AppendRequest, Callable[[], bool]], dict[str, Any]]


def add_append_route(app: bottle.Bottle, config: MasterConfig, append: Append) -> None:
    """`POST /messages`: parse and validate, then `append(request, hung_up)` answers 201 (static
    mode's appender, or cluster mode's current master role, which may raise 421 instead)."""

    @app.post("/messages")
    @json_errors
    def post_message() -> dict[str, Any]:
        body = read_json_body(config.server.max_body_bytes)
        request = parse_append(
            body,
            bottle.request.query.get("w"),
            config.node_count,
            config.server.max_message_bytes,
            bottle.request.get_header(IDEMPOTENCY_HEADER),
        )
        hung_up = bottle.request.environ.get("waitress.client_disconnected", lambda: False)
        answer = append(request, hung_up)
        bottle.response.status = 201
        return answer


def master_app(
    config: MasterConfig,
    store: Store,
    appender: Appender,
    health: Callable[[], dict[str, Any]],
    followers: Followers,
) -> bottle.Bottle:
    app = JsonBottle()
    add_append_route(app, config, appender.append)

    @app.get("/health")
    @json_errors
    def get_health() -> dict[str, Any]:
        return health()

    @app.get("/openapi.json")
    def get_openapi() -> dict[str, Any]:
        return openapi(config.node_count, config.server.max_body_bytes, config.server.max_message_bytes)

    add_read_routes(app, store, max_streams=config.server.reserved_threads // 2, followers=followers)
    return app

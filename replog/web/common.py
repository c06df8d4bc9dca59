"""What master and secondary apps share: JSON errors, bounded body reading, the secret, queries.

Every response is JSON. A `ReplogError` raised by a route becomes `{"error", "detail", ...}` with its
status; Bottle's own errors (404, 405, 500) use the same shape instead of an HTML page.
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Callable
from typing import Any

import bottle

from replog.core.errors import BadRequest, Forbidden, PayloadTooLarge, ReplogError
from replog.core.wire import decode_json_object
from replog.net.transport import SECRET_HEADER
from replog.storage.store import Store

Route = Callable[..., Any]
MAX_PAGE = 100_000  # entries in one paged answer of a read (`limit` is capped at it)

_BOTTLE_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


class JsonBottle(bottle.Bottle):
    """A Bottle app whose error pages are JSON with a stable `error` code."""

    def default_error_handler(self, res: bottle.HTTPError) -> str:
        bottle.response.content_type = "application/json"
        code = _BOTTLE_CODES.get(
            res.status_code, "internal_error" if res.status_code >= 500 else "bad_request"
        )
        detail = res.body if isinstance(res.body, str) and res.body else res.status_line
        if res.status_code >= 500:
            detail = "internal error; see the node's log"
        return json.dumps({"error": code, "detail": detail})


def json_errors(route: Route) -> Route:
    """Turn a raised `ReplogError` into its JSON body and status (plus Retry-After when given)."""

    @functools.wraps(route)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return route(*args, **kwargs)
        except ReplogError as exc:
            bottle.response.status = exc.status
            retry_after = exc.extra.get("retry_after_s")
            if retry_after is not None:
                bottle.response.set_header("Retry-After", str(max(1, round(retry_after))))
            return exc.body()

    return wrapper


def read_json_body(max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object, refused before reading if it is over max_bytes."""
    length = bottle.request.content_length
    if length > max_bytes:
        raise PayloadTooLarge(f"body is {length} bytes; the limit is {max_bytes}", limit_bytes=max_bytes)
    stream = bottle.request.environ["wsgi.input"]
    raw = stream.read(length) if length >= 0 else stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"body is over the limit of {max_bytes} bytes", limit_bytes=max_bytes)
    return decode_json_object(raw)


def require_secret(secret: str | None) -> None:
    """Internal endpoints answer only callers holding the cluster secret, when one is set."""
    if secret is None:
        return
    given = bottle.request.get_header(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise Forbidden(f"this endpoint needs the cluster secret in the {SECRET_HEADER} header")


def query_int(name: str, default: int | None, minimum: int) -> int | None:
    raw = bottle.request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter '{name}' must be an integer, got {raw!r}") from None
    if value < minimum:
        raise BadRequest(f"query parameter '{name}' must be >= {minimum}, got {value}")
    return value



def term_fields(store: Store) -> dict[str, Any]:
    """`/health`'s epoch fields on every node: the epoch it knows and where its log ends.

    Static mode keeps epoch 1 for good; cluster mode (#9) compares `last` as Raft compares logs."""
    last = store.last_position()
    return {"epoch": store.epoch, "last": {"seq": last.seq, "epoch": last.epoch}}

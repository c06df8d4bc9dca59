"""Entries and requests as frozen dataclasses, with all JSON validation in one place.

Parsing never has side effects: a request that fails here is answered 400 and changes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from replog.core.entry import Entry as Entry  # noqa: PLC0414 -- re-exported: it lived here first
from replog.core.errors import BadRequest
from replog.core.quorum import majority

MAX_BULK_MESSAGES = 10_000
MAX_TIMEOUT_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """A validated client append: one or more messages, the resolved w and an optional deadline."""

    messages: tuple[str, ...]
    w: int
    timeout_s: float | None
    bulk: bool


@dataclass(frozen=True, slots=True)
class ReplicateRequest:
    """A batch from the master: entries in seq order, tagged with the master's log id."""

    log_id: str
    entries: tuple[Entry, ...]


def decode_json_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body that must be one JSON object."""
    if not raw.strip():
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    return value


def encode(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _check_message(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"'{field}' must be a string, got {type(value).__name__}")
    if not value:
        raise BadRequest(f"'{field}' must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"'{field}' is not valid Unicode (lone surrogate)") from None
    return value


def resolve_w(raw: object, node_count: int) -> int:
    """Turn a client's w (int, "majority", "all", or a digit string from a query) into 1..node_count."""
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word == "majority":
            return majority(node_count)
        if word == "all":
            return node_count
        if not word.isdigit():
            raise BadRequest(f"w must be an integer 1..{node_count}, 'majority' or 'all', got {raw!r}")
        raw = int(word)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise BadRequest(f"w must be an integer 1..{node_count}, 'majority' or 'all', got {raw!r}")
    if not 1 <= raw <= node_count:
        raise BadRequest(f"w must be between 1 and {node_count} (master + secondaries), got {raw}")
    return raw


def _pick_w(body: Mapping[str, Any], query_w: str | None) -> object:
    given = [body[k] for k in ("w", "write_concern") if k in body]
    if query_w is not None:
        given.append(query_w)
    if not given:
        return 1
    if any(str(g) != str(given[0]) for g in given[1:]):
        raise BadRequest("w is given more than once with different values")
    return given[0]


def _parse_timeout(raw: object) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise BadRequest(f"timeout must be a number of seconds, got {raw!r}")
    if not 0 < raw <= MAX_TIMEOUT_S:
        raise BadRequest(f"timeout must be > 0 and <= {MAX_TIMEOUT_S:g} seconds, got {raw}")
    return float(raw)


def parse_append(body: Mapping[str, Any], query_w: str | None, node_count: int) -> AppendRequest:
    """Validate a `POST /messages` body: `message`/`msg` or bulk `messages`, plus w and timeout."""
    singles = [k for k in ("message", "msg") if k in body]
    if "messages" in body and singles:
        raise BadRequest("give either 'message' or 'messages', not both")
    if len(singles) > 1:
        raise BadRequest("give 'message' or its alias 'msg', not both")
    if "messages" in body:
        raw = body["messages"]
        if not isinstance(raw, list) or not raw:
            raise BadRequest("'messages' must be a non-empty list of strings")
        if len(raw) > MAX_BULK_MESSAGES:
            raise BadRequest(f"'messages' holds {len(raw)} items; at most {MAX_BULK_MESSAGES}")
        messages = tuple(_check_message(m, "messages[]") for m in raw)
        bulk = True
    elif singles:
        messages = (_check_message(body[singles[0]], singles[0]),)
        bulk = False
    else:
        raise BadRequest("missing 'message' (a non-empty string)")
    w = resolve_w(_pick_w(body, query_w), node_count)
    return AppendRequest(messages, w, _parse_timeout(body.get("timeout")), bulk)


def _positive_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"'{field}' must be a positive integer, got {value!r}")
    return value


def parse_replicate(body: Mapping[str, Any]) -> ReplicateRequest:
    """Validate a `POST /replicate` batch, in either of its two forms.

    Compact (what the master sends): `{"log_id", "first_seq", "messages": [str, ...]}`, a contiguous
    run, which costs a fraction of the JSON work. General: `{"log_id", "entries": [{"seq",
    "message"}, ...]}` in strictly increasing seq order.
    """
    log_id = body.get("log_id")
    if not isinstance(log_id, str) or not log_id:
        raise BadRequest("'log_id' must be a non-empty string")
    if "messages" in body:
        first = _positive_int(body.get("first_seq"), "first_seq")
        messages = body["messages"]
        if not isinstance(messages, list):
            raise BadRequest("'messages' must be a list")
        return ReplicateRequest(
            log_id, tuple(Entry(first + i, _check_message(m, "messages[]")) for i, m in enumerate(messages))
        )
    raw = body.get("entries")
    if not isinstance(raw, list):
        raise BadRequest("'entries' must be a list")
    entries: list[Entry] = []
    for item in raw:
        if not isinstance(item, dict):
            raise BadRequest("each entry must be an object {seq, message}")
        seq = _positive_int(item.get("seq"), "seq")
        if entries and seq <= entries[-1].seq:
            raise BadRequest("entries must be in strictly increasing seq order")
        entries.append(Entry(seq, _check_message(item.get("message"), "message")))
    return ReplicateRequest(log_id, tuple(entries))


def encode_batch(log_id: str, first_seq: int, entries: Sequence[Entry]) -> bytes:
    """The compact form of a contiguous batch starting at first_seq (empty: a handshake)."""
    assert not entries or entries[0].seq == first_seq, "a batch starts at first_seq"
    return encode({"log_id": log_id, "first_seq": first_seq, "messages": [e.message for e in entries]})

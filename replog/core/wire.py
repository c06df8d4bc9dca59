"""Entries and requests as frozen dataclasses, with all JSON validation in one place.

Parsing never has side effects: a request that fails here is answered 400 and changes nothing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from typing import Any

from replog.core.dedup import check_client_key
from replog.core.entry import Entry as Entry  # noqa: PLC0414 -- re-exported: it lived here first
from replog.core.entry import Kind
from replog.core.errors import BadRequest, MessageTooLarge
from replog.core.quorum import majority

MAX_BULK_MESSAGES = 10_000
MAX_TIMEOUT_S = 24 * 3600.0
# Deepest nesting of arrays and objects a request body may have, anywhere (unknown keys included).
# Our own bodies need 3 (`{"entries": [{...}]}`); without a limit, ~1,000 levels raise RecursionError
# inside json.loads.
MAX_JSON_DEPTH = 16
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024  # one message, UTF-8 encoded; `--max-message-bytes`
_MAX_W_DIGITS = 9  # "000000003" still parses; longer digit strings are out of range anyway


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """A validated client append: one or more messages, the resolved w and an optional deadline."""

    messages: tuple[str, ...]
    w: int
    timeout_s: float | None
    bulk: bool
    # Each message's idempotency key (None: none given), or None when no message has one: the
    # common case, which keeps the plain append path.
    keys: tuple[str | None, ...] | None = None


@dataclass(frozen=True, slots=True)
class ReplicateRequest:
    """A batch from the master: entries in seq order, tagged with the master's log id."""

    log_id: str
    entries: tuple[Entry, ...]


_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the byte it escapes
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = [0] * 256
for _byte in b"[{":
    _DEPTH_STEP[_byte] = 1
for _byte in b"]}":
    _DEPTH_STEP[_byte] = -1


def json_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in a JSON text, found without recursion or parsing.

    Escapes are dropped first, so the quotes left delimit strings: every other piece of the text
    split on them lies outside strings, where the brackets are counted. Linear, and in C but for
    the running sum. On invalid JSON the figure may be off, which json.loads then reports anyway.
    """
    outside = b"".join(_ESCAPE.sub(b"", raw).split(b'"')[0::2])
    brackets = outside.translate(None, _NOT_BRACKET)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads' object hook: a key given twice is an error, not "the last one wins"."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise BadRequest(f"key {duplicate!r} appears twice in one JSON object")
    return value


def decode_json_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body that must be one JSON object, at most MAX_JSON_DEPTH deep, keys unique."""
    if not raw.strip():
        raise BadRequest("request body is empty; expected a JSON object")
    # Only a body with more brackets than the limit can be too deep: the usual one skips the scan.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and json_depth(raw) > MAX_JSON_DEPTH:
        raise BadRequest(f"request body nests arrays/objects deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(raw, object_pairs_hook=_object_without_duplicates)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:  # not reachable after the scan above; kept so that it can never be a 500
        raise BadRequest(f"request body nests arrays/objects deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    return value


def encode(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _check_message(value: object, field: str, max_bytes: int | None = None) -> str:
    """A non-empty string encodable as UTF-8 and, when max_bytes is given, at most that long in it."""
    if not isinstance(value, str):
        raise BadRequest(f"'{field}' must be a string, got {type(value).__name__}")
    if not value:
        raise BadRequest(f"'{field}' must not be empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadRequest(f"'{field}' is not valid Unicode (lone surrogate)") from None
    if max_bytes is not None and size > max_bytes:
        raise MessageTooLarge(
            f"'{field}' is {size} bytes in UTF-8; the limit is {max_bytes}", limit_bytes=max_bytes
        )
    return value


def resolve_w(raw: object, node_count: int) -> int:
    """A client's w into 1..node_count. Accepted: a JSON integer, or a string (a body value or the
    query's `?w=`, surrounding spaces ignored) of ASCII digits, "majority" or "all", in any case.
    Anything else is refused, Unicode digits that `int()` would read too ("٣", "²")."""
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word == "majority":
            return majority(node_count)
        if word == "all":
            return node_count
        if not (word.isascii() and word.isdigit()):
            raise BadRequest(f"w must be an integer 1..{node_count}, 'majority' or 'all', got {raw!r}")
        if len(word) > _MAX_W_DIGITS:
            raise BadRequest(f"w must be between 1 and {node_count} (master + secondaries), got {raw!r}")
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
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise BadRequest(f"timeout must be a number of seconds, got {raw!r}")
    # An int is compared as it is: float() of a 400-digit integer would raise OverflowError.
    if (isinstance(raw, float) and not math.isfinite(raw)) or not 0 < raw <= MAX_TIMEOUT_S:
        raise BadRequest(f"timeout must be > 0 and <= {MAX_TIMEOUT_S:g} seconds, got {raw!r}")
    return float(raw)


def parse_append(
    body: Mapping[str, Any],
    query_w: str | None,
    node_count: int,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    header_key: str | None = None,
) -> AppendRequest:
    """Validate a `POST /messages` body: `message`/`msg` or bulk `messages`, plus w and timeout.

    Each message is at most max_message_bytes in UTF-8, in bulk too (413 `message_too_large`).
    Idempotency keys: `id` beside a single message or the `Idempotency-Key` header (`header_key`;
    both given: they must agree), and in bulk an item `{"message": ..., "id": ...}` in place of a
    string. One key given to two messages of one body is refused (400): nothing is stored."""
    singles = [k for k in ("message", "msg") if k in body]
    if "messages" in body and singles:
        raise BadRequest("give either 'message' or 'messages', not both")
    if len(singles) > 1:
        raise BadRequest("give 'message' or its alias 'msg', not both")
    keys: tuple[str | None, ...] | None = None
    if "messages" in body:
        if "id" in body or header_key is not None:
            raise BadRequest("a bulk append takes an 'id' per message, not one for the request")
        raw = body["messages"]
        if not isinstance(raw, list) or not raw:
            raise BadRequest("'messages' must be a non-empty list of strings")
        if len(raw) > MAX_BULK_MESSAGES:
            raise BadRequest(f"'messages' holds {len(raw)} items; at most {MAX_BULK_MESSAGES}")
        if all(type(m) is str for m in raw):
            messages = tuple(
                _check_message(m, f"messages[{i}]", max_message_bytes) for i, m in enumerate(raw)
            )
        else:
            items = [_bulk_item(m, i, max_message_bytes) for i, m in enumerate(raw)]
            messages = tuple(m for m, _ in items)
            keys = _unique_keys(tuple(k for _, k in items))
        bulk = True
    elif singles:
        messages = (_check_message(body[singles[0]], singles[0], max_message_bytes),)
        key = _single_key(body.get("id"), "id" in body, header_key)
        keys = None if key is None else (key,)
        bulk = False
    else:
        raise BadRequest("missing 'message' (a non-empty string)")
    w = resolve_w(_pick_w(body, query_w), node_count)
    return AppendRequest(messages, w, _parse_timeout(body.get("timeout")), bulk, keys)


def _bulk_item(raw: object, index: int, max_message_bytes: int) -> tuple[str, str | None]:
    """One item of a bulk `messages` list: a string, or `{"message": str, "id": key}`."""
    field = f"messages[{index}]"
    if isinstance(raw, str):
        return _check_message(raw, field, max_message_bytes), None
    if not isinstance(raw, dict):
        raise BadRequest(f"'{field}' must be a string or an object {{message, id}}")
    unknown = set(raw) - {"message", "id"}
    if unknown or "message" not in raw:
        raise BadRequest(f"'{field}' must be an object with 'message' and an optional 'id' only")
    message = _check_message(raw["message"], f"{field}.message", max_message_bytes)
    key = check_client_key(raw["id"], f"{field}.id") if "id" in raw else None
    return message, key


def _unique_keys(keys: tuple[str | None, ...]) -> tuple[str | None, ...] | None:
    given = [k for k in keys if k is not None]
    if len(set(given)) != len(given):
        raise BadRequest("one idempotency 'id' is given to two messages of one bulk append")
    return keys if given else None


def _single_key(body_key: object, in_body: bool, header_key: str | None) -> str | None:
    key = check_client_key(body_key, "id") if in_body else None
    if header_key is not None:
        header = check_client_key(header_key, "Idempotency-Key")
        if key is not None and key != header:
            raise BadRequest("the Idempotency-Key header and the body's 'id' differ")
        key = header
    return key


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
        keys = _batch_keys(body, len(messages))
        if "epochs" not in body and "control" not in body:  # static mode: every batch
            return ReplicateRequest(
                log_id,
                tuple(
                    Entry(first + i, _check_message(m, "messages[]"), key=keys[i] if keys else None)
                    for i, m in enumerate(messages)
                ),
            )
        return ReplicateRequest(log_id, _cluster_entries(body, first, messages, keys))
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
        key = item.get("key")
        if key is not None and not isinstance(key, str):
            raise BadRequest("an entry's 'key' must be a string or null")
        entries.append(Entry(seq, _check_message(item.get("message"), "message"), key=key))
    return ReplicateRequest(log_id, tuple(entries))


def encode_batch(log_id: str, first_seq: int, entries: Sequence[Entry]) -> bytes:
    """The compact form of a contiguous batch starting at first_seq (empty: a handshake).

    Cluster mode adds two optional fields, only when needed, so static mode's batches are
    unchanged: `epochs`, `[[epoch, first_seq], ...]` where the entries' epoch changes (absent: all
    epoch 1), and `control`, the seqs of control records (epoch-start; their message is empty)."""
    assert not entries or entries[0].seq == first_seq, "a batch starts at first_seq"
    messages = [e.message for e in entries]
    body: dict[str, Any] = {"log_id": log_id, "first_seq": first_seq, "messages": messages}
    if entries and (entries[0].epoch != 1 or entries[-1].epoch != 1):
        body["epochs"] = [
            [e.epoch, e.seq] for i, e in enumerate(entries) if i == 0 or e.epoch != entries[i - 1].epoch
        ]
    control = [e.seq for e in entries if e.kind is not Kind.MESSAGE]
    if control:
        body["control"] = control
    if any(e.key is not None for e in entries):  # idempotency keys travel only when some entry has one
        body["keys"] = [e.key for e in entries]
    return encode(body)


def _cluster_entries(
    body: Mapping[str, Any], first: int, messages: list[Any], keys: list[str | None] | None = None
) -> tuple[Entry, ...]:
    """The compact form's entries with their epochs and control records (see `encode_batch`)."""
    count = len(messages)
    end = first + count
    runs = body.get("epochs", [[1, first]])
    if not isinstance(runs, list) or not 0 < len(runs) <= max(1, count):
        raise BadRequest("'epochs' must be a non-empty list of [epoch, first_seq], at most one per entry")
    starts: list[tuple[int, int]] = []
    for run in runs:
        if not isinstance(run, list) or len(run) != 2:
            raise BadRequest("each of 'epochs' must be [epoch, first_seq]")
        starts.append((_positive_int(run[0], "epochs[][0]"), _positive_int(run[1], "epochs[][1]")))
    rising = all(a[0] < b[0] and a[1] < b[1] for a, b in pairwise(starts))
    if count and (starts[0][1] != first or starts[-1][1] >= end or not rising):
        raise BadRequest("'epochs' must start at first_seq and rise within the batch")
    control = body.get("control", [])
    if not isinstance(control, list) or len(control) > count:
        raise BadRequest("'control' must be a list of seqs within the batch")
    controls = {_positive_int(seq, "control[]") for seq in control}
    if any(not first <= seq < end for seq in controls):
        raise BadRequest("'control' must name seqs within the batch")
    entries: list[Entry] = []
    run = 0
    for i, raw in enumerate(messages):
        seq = first + i
        while run + 1 < len(starts) and starts[run + 1][1] <= seq:
            run += 1
        if seq in controls:
            if raw != "":
                raise BadRequest(f"control record {seq} must have an empty message")
            entries.append(Entry(seq, "", 0.0, starts[run][0], Kind.EPOCH_START))
        else:
            key = keys[i] if keys else None
            entries.append(Entry(seq, _check_message(raw, "messages[]"), 0.0, starts[run][0], key=key))
    return tuple(entries)


def _batch_keys(body: Mapping[str, Any], count: int) -> list[str | None] | None:
    """A compact batch's optional `keys`: one per message, a string or null (issue 13)."""
    keys = body.get("keys")
    if keys is None:
        return None
    if (
        not isinstance(keys, list)
        or len(keys) != count
        or any(k is not None and not isinstance(k, str) for k in keys)
    ):
        raise BadRequest("'keys' must be a list of strings or nulls, one per message")
    return keys

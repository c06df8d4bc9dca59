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

from replog.core.entry import Entry as Entry  # noqa: PLC0414 -- re-exported: it lived here first
from replog.core.entry import Kind
from replog.core.errors import BadRequest, MessageTooLarge
from replog.core.matching import BatchHead
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


@dataclass(frozen=True, slots=True)
class ReplicateRequest:
    """A batch from the master: entries running contiguously from head.prev_seq + 1, tagged with the
    master's log id, and the consistency check's fields (`core.matching.BatchHead`)."""

    log_id: str
    head: BatchHead
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
) -> AppendRequest:
    """Validate a `POST /messages` body: `message`/`msg` or bulk `messages`, plus w and timeout.

    Each message is at most max_message_bytes in UTF-8, in bulk too (413 `message_too_large`)."""
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
        messages = tuple(_check_message(m, f"messages[{i}]", max_message_bytes) for i, m in enumerate(raw))
        bulk = True
    elif singles:
        messages = (_check_message(body[singles[0]], singles[0], max_message_bytes),)
        bulk = False
    else:
        raise BadRequest("missing 'message' (a non-empty string)")
    w = resolve_w(_pick_w(body, query_w), node_count)
    return AppendRequest(messages, w, _parse_timeout(body.get("timeout")), bulk)


def _positive_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"'{field}' must be a positive integer, got {value!r}")
    return value


def _natural(value: object, field: str, limit: int = 1 << 62) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise BadRequest(f"'{field}' must be an integer 0..{limit}, got {value!r}")
    return value


_HEAD_FIELDS = ("epoch", "prev_seq", "prev_epoch", "prev_crc")


def _parse_head(body: Mapping[str, Any]) -> BatchHead:
    missing = [f for f in _HEAD_FIELDS if f not in body]
    if missing:
        raise BadRequest(
            f"batch lacks {', '.join(missing)}: it comes from an older replog master; every node of a "
            "cluster must run the same version (mixed versions are not supported)"
        )
    head = BatchHead(
        _positive_int(body["epoch"], "epoch"),
        _natural(body["prev_seq"], "prev_seq"),
        _natural(body["prev_epoch"], "prev_epoch"),
        _natural(body["prev_crc"], "prev_crc", 0xFFFFFFFF),
    )
    if head.prev_epoch > head.epoch or (head.prev_seq == 0) != (head.prev_epoch == 0):
        raise BadRequest(
            f"prev_epoch {head.prev_epoch} does not fit prev_seq {head.prev_seq} and epoch {head.epoch}"
        )
    if head.prev_seq == 0 and head.prev_crc != 0:
        raise BadRequest("prev_crc must be 0 when prev_seq is 0")
    return head


def _entry_epochs(raw: object, first: int, count: int, epoch: int) -> list[int]:
    """The compact form's `epochs`: [[epoch, first_seq], ...] where the batch's entries change epoch
    (absent: all in the sender's epoch). Both rise; the first run starts at first_seq; no epoch
    passes the sender's."""
    if raw is None:
        return [epoch] * count
    if not isinstance(raw, list) or not 0 < len(raw) <= count:
        raise BadRequest("'epochs' must be a non-empty list of [epoch, first_seq], at most one per entry")
    runs: list[tuple[int, int]] = []
    for pair in raw:
        if not isinstance(pair, list) or len(pair) != 2:
            raise BadRequest("each of 'epochs' must be [epoch, first_seq]")
        runs.append((_positive_int(pair[0], "epochs[][0]"), _positive_int(pair[1], "epochs[][1]")))
    starts_ok = runs[0][1] == first and runs[-1][1] < first + count
    rising = all(a[0] < b[0] and a[1] < b[1] for a, b in pairwise(runs))
    if not (starts_ok and rising and runs[-1][0] <= epoch):
        raise BadRequest("'epochs' must start at first_seq, rise within the batch and not pass its epoch")
    ends = [run_first for _, run_first in runs[1:]] + [first + count]
    return [
        run_epoch
        for (run_epoch, run_first), end in zip(runs, ends, strict=True)
        for _ in range(end - run_first)
    ]


def parse_replicate(body: Mapping[str, Any]) -> ReplicateRequest:
    """Validate a `POST /replicate` batch, in either of its two forms.

    Both carry the consistency check's fields: `epoch` (the sender's), `prev_seq`, `prev_epoch` and
    `prev_crc` (the entry just before the batch; 0, 0, 0 for a batch from seq 1). Compact (what the
    master sends, kept a dict so fields can be added): `{"log_id", "first_seq" (= prev_seq + 1),
    "messages": [str, ...], "epochs"?}`, which costs a fraction of the JSON work; its entries are
    in the sender's epoch unless `epochs` lists where they change. General: `{"log_id", "entries":
    [{"seq", "message", "epoch"?}, ...]}`, seqs running contiguously from prev_seq + 1.
    """
    log_id = body.get("log_id")
    if not isinstance(log_id, str) or not log_id:
        raise BadRequest("'log_id' must be a non-empty string")
    head = _parse_head(body)
    if "messages" in body:
        first = _positive_int(body.get("first_seq"), "first_seq")
        if first != head.prev_seq + 1:
            raise BadRequest(f"first_seq {first} must be prev_seq + 1 ({head.prev_seq + 1})")
        messages = body["messages"]
        if not isinstance(messages, list):
            raise BadRequest("'messages' must be a list")
        epochs = _entry_epochs(body.get("epochs"), first, len(messages), head.epoch) if messages else []
        return ReplicateRequest(
            log_id,
            head,
            tuple(
                Entry(first + i, _check_message(m, "messages[]"), 0.0, epochs[i])
                for i, m in enumerate(messages)
            ),
        )
    raw = body.get("entries")
    if not isinstance(raw, list):
        raise BadRequest("'entries' must be a list")
    entries: list[Entry] = []
    for item in raw:
        if not isinstance(item, dict):
            raise BadRequest("each entry must be an object {seq, message}")
        seq = _positive_int(item.get("seq"), "seq")
        if seq != head.prev_seq + 1 + len(entries):
            raise BadRequest(f"entries must run contiguously from prev_seq + 1 ({head.prev_seq + 1})")
        epoch = _positive_int(item.get("epoch", head.epoch), "epoch")
        if epoch > head.epoch or (entries and epoch < entries[-1].epoch):
            raise BadRequest("entry epochs must not go down nor pass the batch's epoch")
        entries.append(Entry(seq, _check_message(item.get("message"), "message"), 0.0, epoch))
    return ReplicateRequest(log_id, head, tuple(entries))


def encode_batch(log_id: str, head: BatchHead, entries: Sequence[Entry]) -> bytes:
    """The compact form of a contiguous batch after head.prev_seq (empty: a handshake)."""
    first_seq = head.prev_seq + 1
    assert not entries or entries[0].seq == first_seq, "a batch starts right after prev_seq"
    body: dict[str, Any] = {
        "log_id": log_id,
        "epoch": head.epoch,
        "prev_seq": head.prev_seq,
        "prev_epoch": head.prev_epoch,
        "prev_crc": head.prev_crc,
        "first_seq": first_seq,
        "messages": [e.message for e in entries],
    }
    if entries and (entries[0].epoch != head.epoch or entries[-1].epoch != head.epoch):
        runs = [[e.epoch, e.seq] for i, e in enumerate(entries) if i == 0 or e.epoch != entries[i - 1].epoch]
        body["epochs"] = runs
    return encode(body)


def parse_entries_page(body: object) -> list[Entry]:
    """A peer's `GET /entries` answer, whole entries in seq order (issue 11 C8: a master that
    restarted behind its secondaries learns what it lost from one). ValueError if malformed."""
    raw = body.get("entries") if isinstance(body, dict) else None
    if not isinstance(raw, list):
        raise ValueError("an /entries answer holds a list 'entries'")
    kinds = {kind.name.lower(): kind for kind in Kind}
    entries: list[Entry] = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("each entry must be an object")
        seq, message, stored_at = item.get("seq"), item.get("message"), item.get("stored_at", 0.0)
        epoch, kind, key = item.get("epoch", 1), kinds.get(str(item.get("kind", "message"))), item.get("key")
        typed = isinstance(seq, int) and isinstance(epoch, int) and isinstance(message, str)
        typed = typed and isinstance(stored_at, (int, float)) and (key is None or isinstance(key, str))
        if not typed or kind is None:
            raise ValueError(f"malformed entry {str(item)[:200]}")
        assert isinstance(seq, int) and isinstance(epoch, int) and isinstance(message, str)
        if entries and seq != entries[-1].seq + 1:
            raise ValueError("entries must have contiguous seqs")
        entries.append(Entry(seq, message, float(stored_at), epoch, kind, key))
    return entries

"""The internal batch protocol: `POST /replicate` bodies and `GET /entries` pages (pure).

A batch carries the consistency check's fields (`core.matching.BatchHead`): a secondary takes it
only if it attaches to its log. Parsing never has side effects: a batch that fails here is
answered 400 and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from replog.core.entry import Entry, Kind
from replog.core.errors import BadRequest
from replog.core.matching import BatchHead
from replog.core.wire import _check_message, encode


@dataclass(frozen=True, slots=True)
class ReplicateRequest:
    """A batch from the master: entries running contiguously from head.prev_seq + 1, tagged with the
    master's log id, and the consistency check's fields (`core.matching.BatchHead`)."""

    log_id: str
    head: BatchHead
    entries: tuple[Entry, ...]


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
    """The check's fields; the well-formed case first, in a few comparisons (every batch takes it)."""
    try:
        head = BatchHead(body["epoch"], body["prev_seq"], body["prev_epoch"], body["prev_crc"])
    except KeyError:
        head = None
    if head is not None and _well_formed(head):
        return head
    return _parse_head_slowly(body)


def _well_formed(head: BatchHead) -> bool:
    epoch, prev_seq, prev_epoch, prev_crc = head.epoch, head.prev_seq, head.prev_epoch, head.prev_crc
    if not (
        type(epoch) is int and type(prev_seq) is int and type(prev_epoch) is int and type(prev_crc) is int
    ):
        return False
    if prev_seq == 0:
        return epoch >= 1 and prev_epoch == 0 and prev_crc == 0
    return 1 <= prev_epoch <= epoch and 0 < prev_seq <= 1 << 62 and 0 <= prev_crc <= 0xFFFFFFFF


def _parse_head_slowly(body: Mapping[str, Any]) -> BatchHead:
    """Says exactly what is wrong with the check's fields (400)."""
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
    "messages": [str, ...], "epochs"?, "control"?, "keys"?}`, which costs a fraction of the JSON
    work; its entries are in the sender's epoch unless `epochs` lists where they change
    ([[epoch, first_seq], ...]); `control` names the seqs of control records (empty messages);
    `keys` gives each message's idempotency key or null (only when some entry has one). General:
    `{"log_id", "entries": [{"seq", "message", "epoch"?, "key"?}, ...]}`, seqs running
    contiguously from prev_seq + 1.
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
        count = len(messages)
        epochs = _entry_epochs(body.get("epochs"), first, count, head.epoch) if messages else []
        keys = _batch_keys(body, count)
        controls = _batch_controls(body, first, count)
        if not keys and not controls:  # the common case, kept cheap: every batch
            compact = tuple(
                Entry(first + i, _check_message(m, "messages[]"), 0.0, epochs[i])
                for i, m in enumerate(messages)
            )
        else:
            compact = tuple(
                _compact_entry(first + i, m, epochs[i], keys[i] if keys else None, first + i in controls)
                for i, m in enumerate(messages)
            )
        return ReplicateRequest(log_id, head, compact)
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
        key = item.get("key")
        if key is not None and not isinstance(key, str):
            raise BadRequest("an entry's 'key' must be a string or null")
        entries.append(Entry(seq, _check_message(item.get("message"), "message"), 0.0, epoch, key=key))
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
    control = [e.seq for e in entries if e.kind is not Kind.MESSAGE]
    if control:  # control records (epoch-start; their message is empty)
        body["control"] = control
    if any(e.key is not None for e in entries):  # idempotency keys travel only when some entry has one
        body["keys"] = [e.key for e in entries]
    return encode(body)


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


def _batch_controls(body: Mapping[str, Any], first: int, count: int) -> set[int]:
    """A compact batch's optional `control`: the seqs of its control records (empty messages)."""
    control = body.get("control", [])
    if not isinstance(control, list) or len(control) > count:
        raise BadRequest("'control' must be a list of seqs within the batch")
    seqs = {_positive_int(seq, "control[]") for seq in control}
    if any(not first <= seq < first + count for seq in seqs):
        raise BadRequest("'control' must name seqs within the batch")
    return seqs


def _compact_entry(seq: int, raw: object, epoch: int, key: str | None, control: bool) -> Entry:
    if control:
        if raw != "" or key is not None:
            raise BadRequest(f"control record {seq} must have an empty message and no key")
        return Entry(seq, "", 0.0, epoch, Kind.EPOCH_START)
    return Entry(seq, _check_message(raw, "messages[]"), 0.0, epoch, key=key)


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

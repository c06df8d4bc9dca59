"""The idempotency-key window: which keys the log holds recently, and at which seq (pure; no I/O).

A client may give a message a key; a repeat of the key within the window is not stored again but
answered with the original seq (the same message), or refused (another message under the key: 422
`idempotency_key_reused`). The keys live in the log entries themselves (`Entry.key`), so this
window is only an index: the store notes every keyed entry it appends or applies, drops the keys
of entries it removes (a storage failure, a rollback), and rebuilds the window at start from the
log's tail (`rebuild`).

Bounded two ways (`WindowPolicy`): by count (the oldest key goes first) and by age (a key whose
entry was stored more than `max_age_s` ago is forgotten, and a repeat of it is a new message).
Memory is bounded in bytes by the count: `WindowPolicy.worst_case_bytes`.

Ordered by seq: keys are noted in seq order (a master appends, a secondary applies, in order), so
the oldest key is first and the newest last, which makes eviction and `forget_after` O(1) each.
"""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from replog.core.entry import MAX_KEY_BYTES, Entry
from replog.core.errors import BadRequest, IdempotencyKeyReused

DEFAULT_MAX_KEYS = 100_000  # `--dedup-window-keys`
DEFAULT_MAX_AGE_S = 3600.0  # `--dedup-window-s`
DIGEST_BYTES = 16  # blake2b-128 of the message: a collision is not a practical concern
# What one key costs beyond its string, measured with tracemalloc on CPython 3.11 (an OrderedDict
# slot and its link node, a `Held` with its digest bytes, float and int): ~252 bytes; counted high.
KEY_OVERHEAD_BYTES = 360


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    """How many keys, and for how long (seconds, of the entry's `stored_at`), are remembered."""

    max_keys: int = DEFAULT_MAX_KEYS
    max_age_s: float = DEFAULT_MAX_AGE_S

    def __post_init__(self) -> None:
        if self.max_keys < 0:
            raise ValueError("the dedup window holds >= 0 keys")
        if not self.max_age_s > 0:
            raise ValueError("the dedup window lasts > 0 seconds")

    @property
    def worst_case_bytes(self) -> int:
        """Memory of a full window of the longest keys (128 ASCII bytes each): ~55 MB at the
        defaults (53.7 MB), ~5.4 MB at 10,000 keys."""
        return self.max_keys * (KEY_OVERHEAD_BYTES + sys.getsizeof("k" * MAX_KEY_BYTES))


@dataclass(frozen=True, slots=True)
class Held:
    """A key the log holds: its entry's seq, its message's digest, and when the entry was stored."""

    seq: int
    digest: bytes
    stored_at: float


def message_digest(message: str) -> bytes:
    return hashlib.blake2b(message.encode("utf-8", "surrogatepass"), digest_size=DIGEST_BYTES).digest()


def check_client_key(key: object, field: str) -> str:
    """A client's idempotency key: a string of 1..MAX_KEY_BYTES printable ASCII characters (no
    spaces or control characters: it travels in an HTTP header too). Else 400, nothing stored."""
    if not isinstance(key, str):
        raise BadRequest(f"'{field}' must be a string, got {type(key).__name__}")
    if not 0 < len(key) <= MAX_KEY_BYTES or not key.isascii() or not key.isprintable() or " " in key:
        raise BadRequest(
            f"{field!r} must be 1..{MAX_KEY_BYTES} printable ASCII characters, no spaces; got {key[:40]!r}"
        )
    return key


class DedupWindow:
    """Key -> `Held`, oldest first. Not thread-safe: its owner (a store) calls it under its lock."""

    def __init__(self, policy: WindowPolicy | None = None) -> None:
        self.policy = policy or WindowPolicy()
        self._held: OrderedDict[str, Held] = OrderedDict()
        self._key_bytes = 0

    def __len__(self) -> int:
        return len(self._held)

    @property
    def memory_bytes(self) -> int:
        """Estimated memory held (see `KEY_OVERHEAD_BYTES`); at most `policy.worst_case_bytes`."""
        return len(self._held) * KEY_OVERHEAD_BYTES + self._key_bytes

    def find(self, key: str, now: float) -> Held | None:
        """The entry holding key, unless it has expired (then forgotten: a repeat is new)."""
        held = self._held.get(key)
        if held is not None and held.stored_at <= now - self.policy.max_age_s:
            self._drop(key)
            return None
        return held

    def add(self, key: str, seq: int, digest: bytes, stored_at: float) -> None:
        """Remember key at seq (newest). A key held already (an expired one reused) moves to the end."""
        if self.policy.max_keys == 0:
            return
        if key in self._held:
            self._drop(key)
        self._held[key] = Held(seq, digest, stored_at)
        self._key_bytes += sys.getsizeof(key)
        while len(self._held) > self.policy.max_keys:
            self._drop(next(iter(self._held)))

    def note(self, entries: Iterable[Entry]) -> None:
        """Remember the keys of entries just appended or applied, in seq order."""
        for entry in entries:
            if entry.key is not None:
                self.add(entry.key, entry.seq, message_digest(entry.message), entry.stored_at)

    def expire(self, now: float) -> int:
        """Forget the keys older than the window (oldest first); return how many."""
        oldest_kept = now - self.policy.max_age_s
        count = 0
        while self._held:
            key, held = next(iter(self._held.items()))
            if held.stored_at > oldest_kept:
                break
            self._drop(key)
            count += 1
        return count

    def forget_after(self, seq: int) -> None:
        """Forget the keys of entries after seq: the store removed them (never acknowledged, or
        rolled back), so a repeat must store its message again."""
        while self._held:
            key, held = next(reversed(self._held.items()))
            if held.seq <= seq:
                return
            self._drop(key)

    def plan(self, items: Sequence[tuple[str, str | None]], now: float) -> list[Held | None]:
        """For an append of (message, key) items: each item's `Held` if its key is held with the
        same message (a repeat: not stored again), else None (to be stored). Raises
        `IdempotencyKeyReused` (422) if a key is held with another message, and `BadRequest` if one
        key appears twice in the items: checked before anything changes."""
        found: list[Held | None] = []
        seen: set[str] = set()
        for message, key in items:
            if key is None:
                found.append(None)
                continue
            if key in seen:
                raise BadRequest(f"idempotency key {key!r} is given to two messages of one request")
            seen.add(key)
            held = self.find(key, now)
            if held is not None and held.digest != message_digest(message):
                raise IdempotencyKeyReused(
                    f"idempotency key {key!r} was used for another message, stored at seq {held.seq}",
                    seq=held.seq,
                    key=key,
                )
            found.append(held)
        return found

    def _drop(self, key: str) -> None:
        del self._held[key]
        self._key_bytes -= sys.getsizeof(key)


def rebuild(
    policy: WindowPolicy, pages_newest_first: Iterable[Sequence[Entry]], now: float
) -> tuple[DedupWindow, int]:
    """The window of a log, from its pages read from the end backwards (each page in seq order).
    Stops at the first entry older than the window, or once `max_keys` keys are found, so it reads
    only the log's tail. Returns the window and how many entries were scanned."""
    oldest_kept = now - policy.max_age_s
    found: dict[str, Entry] = {}  # newest first; an older entry with the same key is skipped
    scanned = 0
    done = policy.max_keys == 0
    for page in pages_newest_first:
        if done:
            break
        for entry in reversed(page):
            scanned += 1
            if entry.stored_at <= oldest_kept:
                done = True
                break
            if entry.key is not None and entry.key not in found:
                found[entry.key] = entry
                if len(found) >= policy.max_keys:
                    done = True
                    break
    window = DedupWindow(policy)
    window.note(reversed(list(found.values())))
    return window, scanned


@dataclass(frozen=True, slots=True)
class KeyedAppend:
    """What an append with keys did: each item's seq, in the items' order (a repeat's is the
    original's), and how many items were repeats (not stored again)."""

    seqs: tuple[int, ...]
    repeats: int

    @classmethod
    def of(cls, found: Sequence[Held | None], stored: Sequence[Entry]) -> KeyedAppend:
        """`found` from `DedupWindow.plan`; `stored` the entries appended for its None items."""
        fresh = iter(stored)
        seqs = tuple(held.seq if held is not None else next(fresh).seq for held in found)
        return cls(seqs, sum(1 for held in found if held is not None))

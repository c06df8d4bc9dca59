"""A log entry: its seq, message, epoch, kind and idempotency key (pure; no I/O).

`Entry` is what every log holds and every node exchanges; `NewEntry` is what a master asks its log
to append (the log gives it the seq, the time and the master's epoch). Both are immutable.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

MAX_KEY_BYTES = 128  # an idempotency key, UTF-8 encoded (issue 13)


class Kind(enum.Enum):
    """What an entry is. The value is the record's kind byte on disk: never renumber."""

    MESSAGE = 0  # a client's message
    EPOCH_START = 1  # control record of a newly elected master: takes a seq, never shown to readers


KINDS = tuple(Kind)  # kind byte -> Kind, for the record scan (KINDS[i].value == i)


@dataclass(frozen=True, slots=True, init=False)
class Entry:
    """One log entry. `stored_at` is node-local wall-clock time, never sent between nodes.

    `epoch` is the epoch (term) of the master that appended it; entries written before epochs
    existed read as epoch 1. `key` is the client's idempotency key, if it gave one.

    The `__init__` is written out (setting the slots directly) rather than generated: a generated
    frozen `__init__` costs ~1.0 us with six fields, this one ~0.6 us, and recovery and every
    read from disk build one entry per record (a million on a 1M-entry log).
    """

    seq: int
    message: str
    stored_at: float
    epoch: int
    kind: Kind
    key: str | None

    def __init__(
        self,
        seq: int,
        message: str,
        stored_at: float = 0.0,
        epoch: int = 1,
        kind: Kind = Kind.MESSAGE,
        key: str | None = None,
    ) -> None:
        _set_seq(self, seq)
        _set_message(self, message)
        _set_stored_at(self, stored_at)
        _set_epoch(self, epoch)
        _set_kind(self, kind)
        _set_key(self, key)

    @property
    def visible(self) -> bool:
        """Shown to readers: control records take a seq but are never shown."""
        return self.kind is Kind.MESSAGE

    def to_wire(self) -> dict[str, Any]:
        return {"seq": self.seq, "message": self.message}


# The slots' own setters: they bypass the frozen __setattr__, which is what makes __init__ cheap.
def _slot_setter(name: str) -> Callable[[Entry, Any], None]:
    setter: Callable[[Entry, Any], None] = vars(Entry)[name].__set__
    return setter


_set_seq = _slot_setter("seq")
_set_message = _slot_setter("message")
_set_stored_at = _slot_setter("stored_at")
_set_epoch = _slot_setter("epoch")
_set_kind = _slot_setter("kind")
_set_key = _slot_setter("key")


def check_key(key: str) -> str:
    """An idempotency key: non-empty, valid Unicode, at most MAX_KEY_BYTES in UTF-8."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("an idempotency key must be valid Unicode (no lone surrogates)") from None
    if not 0 < size <= MAX_KEY_BYTES:
        raise ValueError(f"an idempotency key takes 1..{MAX_KEY_BYTES} UTF-8 bytes, got {size}")
    return key


@dataclass(frozen=True, slots=True)
class NewEntry:
    """What a master appends: the log adds the seq, the time and its own epoch.

    A control record (`EPOCH_START`) has an empty message and no key."""

    message: str
    key: str | None = None
    kind: Kind = Kind.MESSAGE

    def __post_init__(self) -> None:
        if self.key is not None:
            check_key(self.key)
        if self.kind is not Kind.MESSAGE and (self.message or self.key is not None):
            raise ValueError(f"a {self.kind.name} control record has an empty message and no key")

    @classmethod
    def epoch_start(cls) -> NewEntry:
        return cls("", None, Kind.EPOCH_START)


# Bytes an entry costs in memory beyond its strings: the Entry object (6 slots), its float, its
# seq's int and the list slot pointing at it (measured with sys.getsizeof on CPython 3.11).
ENTRY_OVERHEAD_BYTES = 140

_message = attrgetter("message")
_key = attrgetter("key")


def entries_bytes(entries: Sequence[Entry]) -> int:
    """What holding `entries` costs in memory, for caches bounded in bytes (issue 11 B4): each
    entry's overhead plus its strings' real size (`sys.getsizeof`: a str of wide characters costs
    up to 4 bytes each). Iterates in C (map, attrgetter): it runs for every entry stored."""
    keys = sum(map(sys.getsizeof, filter(None, map(_key, entries))))
    return ENTRY_OVERHEAD_BYTES * len(entries) + sum(map(sys.getsizeof, map(_message, entries))) + keys


def entry_bytes(entry: Entry) -> int:
    """`entries_bytes` of one entry."""
    return entries_bytes((entry,))

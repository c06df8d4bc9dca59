"""Log matching: Raft's AppendEntries consistency check, for replog's batches (pure, no I/O).

Every batch names the entry just before it: `prev_seq`, its epoch and a checksum of its message. A
secondary accepts the batch only if it holds that very entry (or prev_seq is 0), so an accepted batch
proves that the secondary's log equals the master's up to the batch's last seq, and nothing past a
gap is ever held. A refusal says why and where the secondary's log stands, so the master can pick
the next place to try (`core.epochs.match_point`).

Entries of an accepted batch that the secondary already holds are compared one by one: identical
ones (same seq, epoch and checksum) are duplicates, skipped; the first that differs is a conflict.
In cluster mode (issue 12) the secondary removes its suffix from there (`TruncateAfter`); in static
mode there is only one master and one epoch, so a differing entry can only mean a damaged or foreign
log: `static_mode` turns the truncation into a refusal, and nothing held is ever overwritten.
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from replog.core.entry import Entry
from replog.core.epochs import EpochIndex, match_point


class Reason(enum.Enum):
    """Why a secondary refused a batch (the `reason` of a 409 `log_mismatch`)."""

    GAP = "gap"  # it does not hold prev_seq at all: its log is shorter
    EPOCH = "epoch"  # it holds prev_seq from another epoch
    CONTENT = "content"  # it holds prev_seq (or an entry of the batch) with other content


def crc_of(message: str) -> int:
    """The checksum batches carry for an entry: crc32 of its message's UTF-8 bytes."""
    return zlib.crc32(message.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What identifies an entry across nodes: (seq, epoch, checksum of the message)."""

    seq: int
    epoch: int
    crc: int

    @classmethod
    def of(cls, entry: Entry) -> Fingerprint:
        return cls(entry.seq, entry.epoch, crc_of(entry.message))


NOTHING = Fingerprint(0, 0, 0)  # the empty prefix before seq 1: every log holds it


@dataclass(frozen=True, slots=True)
class BatchHead:
    """The consistency-check fields of a batch: the sender's epoch and the entry before the batch."""

    epoch: int
    prev_seq: int
    prev_epoch: int
    prev_crc: int

    @property
    def prev(self) -> Fingerprint:
        return Fingerprint(self.prev_seq, self.prev_epoch, self.prev_crc)

    @classmethod
    def after(cls, prev: Fingerprint, epoch: int) -> BatchHead:
        return cls(epoch, prev.seq, prev.epoch, prev.crc)


@dataclass(frozen=True, slots=True)
class Attach:
    """Accept: the first `skip` entries of the batch are held already (duplicates), append the rest."""

    skip: int


@dataclass(frozen=True, slots=True)
class Refuse:
    """Refuse the batch, changing nothing."""

    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class TruncateAfter:
    """Cluster mode: the batch attaches at prev, but the log differs from seq + 1 on. Remove the
    suffix after seq (into the rollback file), then append the batch's entries from `skip` on."""

    seq: int
    skip: int


Verdict = Attach | Refuse | TruncateAfter


def check_batch(
    head: BatchHead, incoming: Sequence[Fingerprint], last_seq: int, held: Callable[[int], Fingerprint]
) -> Verdict:
    """Decide whether a log that ends at `last_seq` takes a batch; `held(seq)` fingerprints one of its
    entries (1 <= seq <= last_seq). `incoming` must run contiguously from head.prev_seq + 1."""
    if any(f.seq != head.prev_seq + 1 + i for i, f in enumerate(incoming)):
        raise ValueError(f"a batch's entries must run contiguously from seq {head.prev_seq + 1}")
    if head.prev_seq > last_seq:
        return Refuse(Reason.GAP, f"prev_seq {head.prev_seq} is past this log's last seq {last_seq}")
    if head.prev_seq > 0:
        mine = held(head.prev_seq)
        if mine.epoch != head.prev_epoch:
            return Refuse(
                Reason.EPOCH,
                f"seq {head.prev_seq} is held from epoch {mine.epoch}, the batch expects {head.prev_epoch}",
            )
        if mine.crc != head.prev_crc:
            return Refuse(Reason.CONTENT, f"seq {head.prev_seq} is held with other content (crc differs)")
    for index, theirs in enumerate(incoming):
        if theirs.seq > last_seq:
            return Attach(index)
        if held(theirs.seq) != theirs:
            return TruncateAfter(theirs.seq - 1, index)
    return Attach(len(incoming))


def static_mode(verdict: Verdict, held: Callable[[int], Fingerprint]) -> Attach | Refuse:
    """Static mode never removes what it holds: a conflicting suffix is a refusal (reason content)."""
    if isinstance(verdict, TruncateAfter):
        seq = verdict.seq + 1
        mine = held(seq)
        return Refuse(
            Reason.CONTENT,
            f"seq {seq} is held (epoch {mine.epoch}) with other content than the batch's; "
            "refusing to overwrite it",
        )
    return verdict


def cluster_mode(verdict: Verdict, head: BatchHead, last_epoch: int) -> Verdict:
    """Cluster mode rolls a diverged suffix back (`TruncateAfter` stands), with one guard: every
    entry it would remove must be of an epoch below the sender's (`last_epoch`, this log's newest,
    bounds them all, since epochs never go down along a log). Otherwise it is a refusal (content).

    Why no other floor: a master of epoch E was elected by a majority whose logs were no newer than
    its own (the election restriction), so it holds every entry a majority acknowledged, and log
    matching makes a batch conflict only past its longest common prefix with this log: a legitimate
    master never asks to remove a majority-acknowledged entry. An entry of epoch E itself came from
    that master, so it cannot differ from its log; one of a later epoch means the sender is stale
    (admission refuses that first). Either is a foreign or damaged log, never overwritten. A
    secondary does not know the commit point (no batch carries it), so it cannot check more."""
    if isinstance(verdict, TruncateAfter) and last_epoch >= head.epoch:
        return Refuse(
            Reason.CONTENT,
            f"seq {verdict.seq + 1} differs from the batch's, but this log holds entries of epoch "
            f"{last_epoch}, not below the sender's epoch {head.epoch}; refusing to roll them back",
        )
    return verdict


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A refusal as the master reads it: why, and where the secondary's log stands."""

    reason: Reason
    last_seq: int
    last_epoch: int
    bounds: tuple[tuple[int, int], ...]  # its newest epoch boundaries (epoch, first_seq), oldest first

    def to_wire(self) -> dict[str, object]:
        return {
            "reason": self.reason.value,
            "last": {"seq": self.last_seq, "epoch": self.last_epoch},
            "bounds": [list(b) for b in self.bounds],
        }

    @classmethod
    def from_wire(cls, body: object) -> Mismatch | None:
        """The 409 body of a refusal; None if it is not a well-formed `log_mismatch`."""
        if not isinstance(body, dict) or body.get("error") != "log_mismatch":
            return None
        last, bounds = body.get("last"), body.get("bounds")
        try:
            reason = Reason(body.get("reason"))
        except ValueError:
            return None
        if not isinstance(last, dict) or not isinstance(bounds, list):
            return None
        seq, epoch = last.get("seq"), last.get("epoch")
        if not _naturals(seq, epoch) or not all(
            isinstance(b, list) and len(b) == 2 and _naturals(*b) for b in bounds
        ):
            return None
        assert isinstance(seq, int) and isinstance(epoch, int)
        return cls(reason, seq, epoch, tuple((int(b[0]), int(b[1])) for b in bounds))


def _naturals(*values: object) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)


# The master's side: where to try next after a refusal. ------------------------------------------------
MAX_SEARCH_ROUNDS = 16  # refusals in a row before the link gives up and calls it a conflict


def next_candidate(refusal: Mismatch, prev_seq: int, ours: EpochIndex, ours_last: int) -> int | str:
    """The prev_seq to try after `refusal` of a batch that attached at prev_seq, or why there is none
    (a conflict). Each candidate is below prev_seq, so a search ends; `match_point` makes it one
    round trip per epoch boundary (static mode: a "gap" answers at once with the secondary's last).

    A "content" refusal is a conflict at once: the secondary holds prev_seq from the same epoch with
    other content, which log matching says cannot happen between honest logs (a damaged or foreign
    log, or a master that lost entries and appended others: never overwritten in static mode)."""
    if refusal.reason is Reason.CONTENT:
        return f"it holds seq {prev_seq} with other content than this master's"
    if refusal.reason is Reason.GAP and refusal.last_seq >= prev_seq:
        return f"it refused seq {prev_seq} as a gap yet says it holds up to seq {refusal.last_seq}"
    top = min(ours_last, prev_seq - 1, refusal.last_seq)
    if top < 0:
        return f"it refused a batch at seq {prev_seq}, which every log holds"
    return match_point(ours, top, refusal.bounds, top)

"""Log matching, driven directly: the batch check (every reason), static mode, the master's next guess."""

from __future__ import annotations

import pytest

from replog.core.entry import Entry
from replog.core.epochs import EpochIndex
from replog.core.matching import (
    NOTHING,
    Attach,
    BatchHead,
    Fingerprint,
    Mismatch,
    Reason,
    Refuse,
    TruncateAfter,
    check_batch,
    cluster_mode,
    crc_of,
    next_candidate,
    static_mode,
)

HELD = [Entry(1, "a", epoch=1), Entry(2, "b", epoch=1), Entry(3, "c", epoch=2)]


def held(seq: int) -> Fingerprint:
    return NOTHING if seq == 0 else Fingerprint.of(HELD[seq - 1])


def prints(*entries: Entry) -> list[Fingerprint]:
    return [Fingerprint.of(e) for e in entries]


def test_a_batch_from_seq_one_always_attaches() -> None:
    assert check_batch(BatchHead(2, 0, 0, 0), prints(*HELD), 3, held) == Attach(3)
    assert check_batch(BatchHead(2, 0, 0, 0), [], 0, held) == Attach(0)


def test_a_batch_after_the_last_entry_attaches_with_nothing_to_skip() -> None:
    head = BatchHead(2, 3, 2, crc_of("c"))
    assert check_batch(head, prints(Entry(4, "d", epoch=2)), 3, held) == Attach(0)


def test_held_duplicates_are_skipped() -> None:
    head = BatchHead(2, 1, 1, crc_of("a"))
    batch = prints(HELD[1], HELD[2], Entry(4, "d", epoch=2))
    assert check_batch(head, batch, 3, held) == Attach(2)


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (BatchHead(2, 4, 2, 0), Reason.GAP),
        (BatchHead(2, 3, 1, crc_of("c")), Reason.EPOCH),
        (BatchHead(2, 3, 2, crc_of("x")), Reason.CONTENT),
    ],
)
def test_a_batch_that_does_not_attach_is_refused_with_its_reason(head: BatchHead, reason: Reason) -> None:
    verdict = check_batch(head, [], 3, held)
    assert isinstance(verdict, Refuse) and verdict.reason is reason


def test_a_differing_held_entry_means_truncate_in_cluster_mode_and_refuse_in_static_mode() -> None:
    head = BatchHead(3, 1, 1, crc_of("a"))
    batch = prints(HELD[1], Entry(3, "other", epoch=3))
    verdict = check_batch(head, batch, 3, held)
    assert verdict == TruncateAfter(2, 1)
    refusal = static_mode(verdict, held)
    assert isinstance(refusal, Refuse) and refusal.reason is Reason.CONTENT
    assert "seq 3 is held (epoch 2)" in refusal.detail
    assert static_mode(Attach(1), held) == Attach(1)


def test_cluster_mode_rolls_back_only_entries_of_epochs_below_the_senders() -> None:
    head = BatchHead(3, 1, 1, crc_of("a"))
    verdict = check_batch(head, prints(HELD[1], Entry(3, "other", epoch=3)), 3, held)
    assert cluster_mode(verdict, head, last_epoch=2) == TruncateAfter(2, 1)  # held epoch 2 < 3
    # A log holding entries of the sender's own epoch (or later) never lost them to that sender: a
    # difference there is a damaged or foreign log, refused as in static mode.
    for last_epoch in (3, 4):
        refusal = cluster_mode(verdict, head, last_epoch)
        assert isinstance(refusal, Refuse) and refusal.reason is Reason.CONTENT
        assert "refusing to roll them back" in refusal.detail
    assert cluster_mode(Attach(2), head, last_epoch=5) == Attach(2)
    gap = Refuse(Reason.GAP, "x")
    assert cluster_mode(gap, head, last_epoch=1) is gap


def test_entries_must_run_contiguously_from_prev() -> None:
    with pytest.raises(ValueError, match="contiguously from seq 2"):
        check_batch(BatchHead(1, 1, 1, crc_of("a")), prints(HELD[2]), 3, held)


def test_a_refusal_reads_back_from_its_wire_form() -> None:
    refusal = Mismatch(Reason.EPOCH, 9, 2, ((1, 1), (2, 5)))
    assert Mismatch.from_wire({"error": "log_mismatch", **refusal.to_wire()}) == refusal
    assert Mismatch.from_wire({"error": "log_id_mismatch"}) is None
    assert Mismatch.from_wire({"error": "log_mismatch", "reason": "what"}) is None
    assert Mismatch.from_wire({"error": "log_mismatch", "reason": "gap", "last": {}, "bounds": []}) is None
    bad_bounds = {"error": "log_mismatch", "reason": "gap", "last": {"seq": 1, "epoch": 1}, "bounds": [[1]]}
    assert Mismatch.from_wire(bad_bounds) is None


@pytest.mark.parametrize(
    ("refusal", "prev", "expected"),
    [
        (Mismatch(Reason.GAP, 4, 1, ((1, 1),)), 10, 4),  # static mode: straight to its last seq
        (Mismatch(Reason.GAP, 0, 0, ()), 10, 0),  # an empty secondary
        (Mismatch(Reason.EPOCH, 12, 3, ((1, 1), (3, 7))), 10, 6),  # below its epoch 3
        (Mismatch(Reason.EPOCH, 12, 1, ((1, 1),)), 10, 9),  # it says epoch 1 throughout: one lower
    ],
)
def test_the_next_candidate(refusal: Mismatch, prev: int, expected: int) -> None:
    assert next_candidate(refusal, prev, EpochIndex([(1, 1)]), 20) == expected


def test_a_content_refusal_has_no_candidate() -> None:
    why = next_candidate(Mismatch(Reason.CONTENT, 12, 1, ((1, 1),)), 10, EpochIndex([(1, 1)]), 20)
    assert why == "it holds seq 10 with other content than this master's"

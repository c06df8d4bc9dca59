"""The lease of a cluster-mode master: answered sends from a majority, within the minimum timeout."""

from __future__ import annotations

import pytest

from replog.core.batches import encode_batch
from replog.core.election import ElectionConfig
from replog.core.entry import Entry
from replog.core.matching import BatchHead, crc_of
from replog.master_role import LeasedView
from replog.net.fenced import FencedTransport, Lease
from replog.net.transport import ProbeResult, TransportError

CONFIG = ElectionConfig("a", ("a", "b", "c"), True, 1.0, 2.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_lease_until_a_majority_answered_then_until_the_minimum_timeout_after_the_send() -> None:
    clock = Clock()
    lease = Lease(CONFIG, clock)
    assert not lease.valid()
    lease.answered("b", 99.5)
    assert lease.valid() and lease.deadline() == 100.5
    clock.now = 100.5
    assert not lease.valid()
    lease.answered("b", 99.0)  # an older send never moves the lease back
    assert lease.deadline() == 100.5


def test_a_leased_view_is_read_only_without_the_lease_even_with_a_quorum() -> None:
    valid = [False]
    view = LeasedView(lambda: valid[0])
    view.publish(True)
    assert view.read_only
    valid[0] = True
    assert not view.read_only
    view.publish(False)
    assert view.read_only


class Fake:
    def __init__(self, error: TransportError | None = None) -> None:
        self.error = error

    def replicate(self, body: bytes) -> int:
        if self.error:
            raise self.error
        return 7

    def probe(self) -> ProbeResult:
        if self.error:
            raise self.error
        return ProbeResult(7, "log")

    def close(self) -> None:
        pass


def batch(first: int, last: int) -> bytes:
    head = BatchHead(1, first - 1, min(first - 1, 1), crc_of(f"m{first - 1}") if first > 1 else 0)
    return encode_batch("log", head, [Entry(seq, f"m{seq}") for seq in range(first, last + 1)])


def test_answers_feed_the_lease_and_a_stale_epoch_refusal_reports_the_newer_epoch() -> None:
    clock = Clock()
    lease = Lease(CONFIG, clock)
    seen: list[int] = []
    fenced = FencedTransport(Fake(), "b", lease, clock, seen.append)
    assert fenced.replicate(batch(1, 7)) == 7 and lease.deadline() == 101.0
    clock.now = 100.2
    assert fenced.probe().acked_seq == 7 and lease.deadline() == pytest.approx(101.2)
    refused = FencedTransport(Fake(TransportError("stale", answered=True, refused=True, epoch=9)), "c",
                              lease, clock, seen.append)  # fmt: skip
    with pytest.raises(TransportError):
        refused.replicate(batch(1, 7))
    with pytest.raises(TransportError):
        refused.probe()
    assert seen == [9, 9]
    assert lease.deadline() == pytest.approx(101.2)  # a refusal is not an answer

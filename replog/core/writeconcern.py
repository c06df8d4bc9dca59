"""Write-concern accounting: which waiting seqs have been held by enough nodes.

An entry is held by w nodes when the master has stored it (durably, once the log is on disk) and
w-1 secondaries have acked it. Since acks are contiguous, the commit point for w is the (w-1)-th
largest secondary ack, capped by the master's own stored seq. Waiters sit in one heap per w, so an
ack wakes exactly the waiters it satisfies and touches no others.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Token = TypeVar("Token", bound=Hashable)


class WriteConcernTracker:
    """Acked seqs per secondary plus the master's stored seq."""

    def __init__(self, secondaries: Iterable[str]) -> None:
        self.acked: dict[str, int] = {name: 0 for name in secondaries}
        self.master_seq = 0

    @property
    def node_count(self) -> int:
        return len(self.acked) + 1

    def master_stored(self, seq: int) -> bool:
        if seq > self.master_seq:
            self.master_seq = seq
            return True
        return False

    def ack(self, secondary: str, seq: int) -> bool:
        """Record a secondary's acked seq; it may go down if the node lost its log."""
        if self.acked[secondary] == seq:
            return False
        self.acked[secondary] = seq
        return True

    def commit_point(self, w: int) -> int:
        """Highest seq held by at least w nodes (master included)."""
        if w <= 1:
            return self.master_seq
        ranked = sorted(self.acked.values(), reverse=True)
        if w - 1 > len(ranked):
            return 0
        return min(self.master_seq, ranked[w - 2])

    def acks_for(self, seq: int) -> int:
        """How many nodes hold seq right now."""
        return int(self.master_seq >= seq) + sum(1 for a in self.acked.values() if a >= seq)


@dataclass(order=True)
class _Slot(Generic[Token]):
    seq: int
    order: int
    token: Token = field(compare=False)


class Waiters(Generic[Token]):
    """Tokens waiting for (seq, w); `satisfied` pops exactly those the tracker now covers."""

    def __init__(self) -> None:
        self._heaps: dict[int, list[_Slot[Token]]] = {}
        self._cancelled: set[Token] = set()
        self._count = 0

    def __len__(self) -> int:
        return sum(len(h) for h in self._heaps.values()) - len(self._cancelled)

    def add(self, seq: int, w: int, token: Token) -> None:
        self._count += 1
        heapq.heappush(self._heaps.setdefault(w, []), _Slot(seq, self._count, token))

    def cancel(self, token: Token) -> None:
        """Forget a waiter (client gave up); it is dropped lazily when its seq comes up."""
        self._cancelled.add(token)

    def satisfied(self, tracker: WriteConcernTracker) -> list[tuple[int, Token]]:
        """Pop every live (seq, token) whose w is now met."""
        done: list[tuple[int, Token]] = []
        for w, heap in self._heaps.items():
            point = tracker.commit_point(w)
            while heap and heap[0].seq <= point:
                slot = heapq.heappop(heap)
                if slot.token in self._cancelled:
                    self._cancelled.discard(slot.token)
                else:
                    done.append((slot.seq, slot.token))
        return done

    def drain(self) -> list[Token]:
        """Every live waiter, for shutdown."""
        live = [s.token for h in self._heaps.values() for s in h if s.token not in self._cancelled]
        self._heaps.clear()
        self._cancelled.clear()
        return live

"""The quorum gate: write-concern waiters, the read-only flag, and nothing else.

Request threads register a future per append; the gate completes it exactly once, when the master
and w-1 secondaries hold the seq, or fails it on shutdown or when the master's store dropped the
entry (a full disk: `StoreFailed`). Acks, health changes and store failures arrive by `tell`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pykka

from replog.actors.base import ReplogActor
from replog.core.errors import ShuttingDown, StorageUnavailable
from replog.core.health import Status
from replog.core.quorum import available_nodes, is_writable, majority
from replog.core.writeconcern import Waiters, WriteConcernTracker
from replog.logs import node_logger


@dataclass(frozen=True, slots=True)
class Register:
    seq: int
    w: int
    future: pykka.Future[int]  # completed with the number of nodes holding seq
    generation: int = 0  # the master store's generation the entry was appended in


@dataclass(frozen=True, slots=True)
class StoreFailed:
    """The master's store failed: entries appended before `generation` past `durable_seq` were
    dropped (never durable, never acknowledged); their seqs will be reused by new entries."""

    generation: int
    durable_seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class Cancel:
    future: pykka.Future[int]


@dataclass(frozen=True, slots=True)
class MasterStored:
    seq: int


@dataclass(frozen=True, slots=True)
class Acked:
    secondary: str
    seq: int


@dataclass(frozen=True, slots=True)
class LinkVerdict:
    """A link's judgement of its secondary: whether it counts toward quorum (verified, no conflict),
    and whether it shows this master behind (it holds our whole log and more, up to `behind`)."""

    secondary: str
    counted: bool
    behind: int | None


@dataclass(frozen=True, slots=True)
class HealthChanged:
    secondary: str
    status: Status


@dataclass(frozen=True, slots=True)
class AcksFor:
    seq: int


class Snapshot:
    """Ask for the gate's figures for /health."""


class QuorumView:
    """The read-only flag, published by the gate and read by request threads without a hop."""

    def __init__(self) -> None:
        self._writable = threading.Event()
        self.reason: str | None = None  # why it is read-only (a single attribute: atomic to read)

    @property
    def read_only(self) -> bool:
        return not self._writable.is_set()

    def publish(self, writable: bool, reason: str | None = None) -> None:
        self.reason = None if writable else reason
        if writable:
            self._writable.set()
        else:
            self._writable.clear()


class QuorumGate(ReplogActor):
    def __init__(self, node: str, secondaries: Sequence[str], view: QuorumView) -> None:
        super().__init__()
        self._log = node_logger(__name__, node)
        self._tracker = WriteConcernTracker(secondaries)
        self._waiters: Waiters[pykka.Future[int]] = Waiters()
        self._live: dict[pykka.Future[int], tuple[int, int]] = {}  # future -> (seq, generation)
        self._drops: list[tuple[int, int]] = []  # (generation, durable_seq) of recent store failures
        self._statuses = {name: Status.UNHEALTHY for name in secondaries}
        # Quorum counts verified links only (issue 11 C7): none is verified before its handshake.
        self._counted = dict.fromkeys(secondaries, False)
        self._behind: dict[str, int] = {}  # secondary -> the seq it holds past our log (issue 11 C8)
        self._view = view
        self._view.publish(self._writable(), self._read_only_reason())

    def _counting(self) -> list[Status]:
        """The statuses of the secondaries that may count toward quorum (the others as Unhealthy)."""
        return [s if self._counted[name] else Status.UNHEALTHY for name, s in self._statuses.items()]

    def _writable(self) -> bool:
        return not self._behind and is_writable(self._counting(), self._tracker.node_count)

    def _read_only_reason(self) -> str | None:
        if self._behind:
            url, seq = max(self._behind.items(), key=lambda item: item[1])
            return f"behind: {url} holds seq {seq}, this node {self._tracker.master_seq}"
        if not is_writable(self._counting(), self._tracker.node_count):
            figures = self._quorum_figures()
            return (
                f"no quorum: {figures['available']} of {figures['nodes']} nodes available and verified, "
                f"{figures['needed']} needed"
            )
        return None

    def handle(self, message: Any) -> Any:
        match message:
            case Register(seq, w, future, generation):
                self._register(seq, w, future, generation)
            case Cancel(future):
                self._cancel(future)
            case StoreFailed(generation, durable_seq, reason):
                self._store_failed(generation, durable_seq, reason)
            case MasterStored(seq):
                self._master_stored(seq)
            case Acked(secondary, seq):
                if self._tracker.ack(secondary, seq):
                    self._complete_satisfied()
            case HealthChanged(secondary, status):
                self._change(lambda: self._statuses.__setitem__(secondary, status))
            case LinkVerdict(secondary, counted, behind):
                self._change(lambda: self._judged(secondary, counted, behind))
            case AcksFor(seq):
                return self._tracker.acks_for(seq)
            case Snapshot():
                return self._snapshot()
            case _:
                self._log.error("gate got unknown message=%r", message)
        return None

    def _master_stored(self, seq: int) -> None:
        if self._tracker.master_stored(seq):
            self._complete_satisfied()
            if self._behind:  # the reason names our stored seq: keep it current while catching up
                self._view.publish(self._writable(), self._read_only_reason())

    def _cancel(self, future: pykka.Future[int]) -> None:
        if self._live.pop(future, None) is not None:
            self._waiters.cancel(future)

    def _register(self, seq: int, w: int, future: pykka.Future[int], generation: int) -> None:
        if self._was_dropped(seq, generation):  # the store failure was heard before this waiter
            self._fail_dropped(future, seq, "a storage failure")
            return
        self._live[future] = (seq, generation)
        self._waiters.add(seq, w, future)
        self._complete_satisfied()

    def _complete_satisfied(self) -> None:
        for seq, future in self._waiters.satisfied(self._tracker):
            self._live.pop(future, None)
            future.set(self._tracker.acks_for(seq))

    def _store_failed(self, generation: int, durable_seq: int, reason: str) -> None:
        """Fail at once every writer whose entry the store dropped: an honest 503, never a 504
        claiming it is stored, and never a 201 when its seq is reused by another entry."""
        self._drops = [*self._drops[-99:], (generation, durable_seq)]
        dropped = [(f, seq) for f, (seq, gen) in self._live.items() if gen < generation and seq > durable_seq]
        for future, seq in dropped:
            self._live.pop(future)
            self._waiters.cancel(future)
            self._fail_dropped(future, seq, reason)
        if dropped:
            self._log.warning("failed writers whose entries the store dropped count=%d", len(dropped))

    def _was_dropped(self, seq: int, generation: int) -> bool:
        return any(gen > generation and seq > durable for gen, durable in self._drops)

    @staticmethod
    def _fail_dropped(future: pykka.Future[int], seq: int, reason: str) -> None:
        error = StorageUnavailable(
            f"the master's disk failed before seq {seq} was durable ({reason}); nothing was stored",
            retry_after_s=1,
        )
        future.set_exception((StorageUnavailable, error, None))  # pykka wants an exc_info triple

    def _judged(self, secondary: str, counted: bool, behind: int | None) -> None:
        self._counted[secondary] = counted
        if behind is None:
            self._behind.pop(secondary, None)
        else:
            self._behind[secondary] = behind

    def _change(self, apply: Callable[[], None]) -> None:
        """Apply a change of health or verdict; publish the read-only flag, and log it when it flips
        or when the master turns behind a secondary (a reason worth a line even if already read-only)."""
        was_writable, was_behind = self._writable(), bool(self._behind)
        apply()
        writable = self._writable()
        self._view.publish(writable, self._read_only_reason())
        if writable == was_writable and (writable or was_behind or not self._behind):
            return
        figures = self._quorum_figures()
        if writable:
            self._log.info(
                "quorum regained; accepting appends available=%d needed=%d",
                figures["available"],
                figures["needed"],
            )
        else:
            self._log.warning(
                "master is read-only reason=%s available=%d needed=%d",
                self._read_only_reason(),
                figures["available"],
                figures["needed"],
            )

    def _quorum_figures(self) -> dict[str, int]:
        return {
            "nodes": self._tracker.node_count,
            "available": available_nodes(self._counting()),
            "needed": majority(self._tracker.node_count),
        }

    def _snapshot(self) -> dict[str, Any]:
        return {
            "read_only": not self._writable(),
            "read_only_reason": self._read_only_reason(),
            "quorum": self._quorum_figures(),
            "stored_seq": self._tracker.master_seq,
            "waiting_writers": len(self._live),
            "acked": dict(self._tracker.acked),
        }

    def on_stop(self) -> None:
        for future in self._waiters.drain():
            # pykka wants an exc_info triple, not an exception instance.
            error = ShuttingDown("node is shutting down; the entry is stored")
            future.set_exception((ShuttingDown, error, None))
        self._live.clear()

"""The quorum gate: write-concern waiters, the read-only flag, and nothing else.

Request threads register a future per append; the gate completes it exactly once, when the master
and w-1 secondaries hold the seq, or fails it on shutdown. Acks and health changes arrive by `tell`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pykka

from replog.actors.base import ReplogActor
from replog.core.errors import ShuttingDown
from replog.core.health import Status
from replog.core.quorum import available_nodes, is_writable, majority
from replog.core.writeconcern import Waiters, WriteConcernTracker
from replog.logs import node_logger


@dataclass(frozen=True, slots=True)
class Register:
    seq: int
    w: int
    future: pykka.Future[int]  # completed with the number of nodes holding seq


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

    @property
    def read_only(self) -> bool:
        return not self._writable.is_set()

    def publish(self, writable: bool) -> None:
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
        self._live: set[pykka.Future[int]] = set()
        self._statuses = {name: Status.UNHEALTHY for name in secondaries}
        self._view = view
        self._view.publish(self._writable())

    def _writable(self) -> bool:
        return is_writable(self._statuses.values(), self._tracker.node_count)

    def handle(self, message: Any) -> Any:
        match message:
            case Register(seq, w, future):
                self._live.add(future)
                self._waiters.add(seq, w, future)
                self._complete_satisfied()
            case Cancel(future):
                if future in self._live:
                    self._live.discard(future)
                    self._waiters.cancel(future)
            case MasterStored(seq):
                if self._tracker.master_stored(seq):
                    self._complete_satisfied()
            case Acked(secondary, seq):
                if self._tracker.ack(secondary, seq):
                    self._complete_satisfied()
            case HealthChanged(secondary, status):
                self._health_changed(secondary, status)
            case AcksFor(seq):
                return self._tracker.acks_for(seq)
            case Snapshot():
                return self._snapshot()
            case _:
                self._log.error("gate got unknown message=%r", message)
        return None

    def _complete_satisfied(self) -> None:
        for seq, future in self._waiters.satisfied(self._tracker):
            self._live.discard(future)
            future.set(self._tracker.acks_for(seq))

    def _health_changed(self, secondary: str, status: Status) -> None:
        was_writable = self._writable()
        self._statuses[secondary] = status
        writable = self._writable()
        self._view.publish(writable)
        if writable == was_writable:
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
                "quorum lost; master is read-only available=%d needed=%d",
                figures["available"],
                figures["needed"],
            )

    def _quorum_figures(self) -> dict[str, int]:
        return {
            "nodes": self._tracker.node_count,
            "available": available_nodes(self._statuses.values()),
            "needed": majority(self._tracker.node_count),
        }

    def _snapshot(self) -> dict[str, Any]:
        return {
            "read_only": not self._writable(),
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

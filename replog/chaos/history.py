"""The recorded history of a fault run and the final reads, as data.

A history is a JSON Lines file: one event per line, written while the run happens so that a
crashed run still leaves evidence. This module only converts between dicts and frozen
dataclasses; it never touches the network, so the checker stays a pure function of its inputs.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "Event",
    "FaultEvent",
    "FaultPhase",
    "FinalEntry",
    "FinalState",
    "HealthEvent",
    "OpEvent",
    "OpType",
    "ReadEvent",
    "dump_final",
    "event_from_dict",
    "event_to_dict",
    "final_from_dict",
    "parse_history",
]


class OpType(enum.Enum):
    """What a client saw of one append."""

    INVOKE = "invoke"  # about to send; recorded before the HTTP call
    OK = "ok"  # 201: w was met, seq known
    FAIL = "fail"  # definite rejection: nothing was stored
    TIMEOUT = "timeout"  # indeterminate: may or may not land (seq known on a 504)


class FaultPhase(enum.Enum):
    START = "start"
    END = "end"


@dataclass(frozen=True)
class OpEvent:
    """One step of one append operation by one client process."""

    type: OpType
    process: int
    value: str
    w: int
    time: float
    seq: int | None = None
    status: int | None = None
    acks: int | None = None
    op: str = "append"
    node: str | None = None  # cluster mode: the node whose answer this is (after following a 421)


@dataclass(frozen=True)
class HealthEvent:
    """The master's own /health answer.

    `time` is when the answer arrived and `sent` when it was asked for: the state it reports
    held at some instant in between, which is what makes the read-only rule sound.
    """

    time: float
    read_only: bool
    sent: float | None = None

    @property
    def asked_at(self) -> float:
        return self.time if self.sent is None else self.sent


@dataclass(frozen=True)
class FaultEvent:
    """A fault starting or ending; informational, the checker only counts them."""

    time: float
    fault: str
    target: str
    phase: FaultPhase


@dataclass(frozen=True)
class ReadEvent:
    """A reader's page of `/entries` from one node (cluster mode): where it started, how many
    entries, and what was wrong with it (None: well formed)."""

    time: float
    node: str
    from_seq: int
    count: int
    problem: str | None = None


Event: TypeAlias = OpEvent | HealthEvent | FaultEvent | ReadEvent


@dataclass(frozen=True)
class FinalEntry:
    """One entry read from a node after healing."""

    seq: int
    message: str
    stored_at: float
    epoch: int = 1
    kind: str = "message"  # cluster mode also has control records ("epoch_start"), never messages

    @property
    def is_message(self) -> bool:
        return self.kind == "message"


FinalState: TypeAlias = Mapping[str, tuple[FinalEntry, ...]]


def _opt_int(raw: Any) -> int | None:
    return None if raw is None else int(raw)


def event_from_dict(raw: Mapping[str, Any]) -> Event:
    """Parse one history line; raises ValueError/KeyError on a malformed one."""
    kind = raw["type"]
    if kind == "health":
        sent = raw.get("sent")
        return HealthEvent(
            time=float(raw["time"]),
            read_only=bool(raw["read_only"]),
            sent=None if sent is None else float(sent),
        )
    if kind == "read":
        problem = raw.get("problem")
        return ReadEvent(
            time=float(raw["time"]),
            node=str(raw["node"]),
            from_seq=int(raw["from_seq"]),
            count=int(raw["count"]),
            problem=None if problem is None else str(problem),
        )
    if kind == "fault":
        return FaultEvent(
            time=float(raw["time"]),
            fault=str(raw["fault"]),
            target=str(raw["target"]),
            phase=FaultPhase(raw["phase"]),
        )
    return OpEvent(
        type=OpType(kind),
        op=str(raw.get("op", "append")),
        process=int(raw["process"]),
        value=str(raw["value"]),
        w=int(raw["w"]),
        time=float(raw["time"]),
        seq=_opt_int(raw.get("seq")),
        status=_opt_int(raw.get("status")),
        acks=_opt_int(raw.get("acks")),
        node=None if raw.get("node") is None else str(raw["node"]),
    )


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON shape of one event (the inverse of event_from_dict)."""
    if isinstance(event, HealthEvent):
        out: dict[str, Any] = {
            "type": "health",
            "time": event.time,
            "read_only": event.read_only,
        }
        if event.sent is not None:
            out["sent"] = event.sent
        return out
    if isinstance(event, ReadEvent):
        return {
            "type": "read",
            "time": event.time,
            "node": event.node,
            "from_seq": event.from_seq,
            "count": event.count,
            "problem": event.problem,
        }
    if isinstance(event, FaultEvent):
        return {
            "type": "fault",
            "time": event.time,
            "fault": event.fault,
            "target": event.target,
            "phase": event.phase.value,
        }
    return {
        "type": event.type.value,
        "op": event.op,
        "process": event.process,
        "value": event.value,
        "w": event.w,
        "time": event.time,
        "seq": event.seq,
        "status": event.status,
        "acks": event.acks,
        **({"node": event.node} if event.node is not None else {}),
    }


def parse_history(lines: Iterable[str]) -> Iterator[Event]:
    """Parse JSON Lines; blank lines are skipped, a torn last line (crash mid-write) too."""
    pending: str | None = None
    for line in lines:
        if pending is not None:
            raise ValueError(f"malformed history line: {pending[:80]!r}")
        text = line.strip()
        if not text:
            continue
        try:
            yield event_from_dict(json.loads(text))
        except json.JSONDecodeError:
            pending = text


def final_from_dict(
    raw: Mapping[str, Iterable[Mapping[str, Any]]],
) -> dict[str, tuple[FinalEntry, ...]]:
    """Parse final.json: node name -> entries in the order the node returned them."""
    return {
        node: tuple(
            FinalEntry(
                seq=int(e["seq"]),
                message=str(e["message"]),
                stored_at=float(e["stored_at"]),
                epoch=int(e.get("epoch", 1)),
                kind=str(e.get("kind", "message")),
            )
            for e in entries
        )
        for node, entries in raw.items()
    }


def dump_final(final: FinalState) -> dict[str, list[dict[str, Any]]]:
    return {
        node: [
            {"seq": e.seq, "message": e.message, "stored_at": e.stored_at, "epoch": e.epoch, "kind": e.kind}
            for e in entries
        ]
        for node, entries in final.items()
    }

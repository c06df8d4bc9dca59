"""Check a recorded history against the final reads of every node.

A pure function: no clock, no I/O. It flags only what is definite from the evidence: an op that
timed out may or may not land, so it is counted, never flagged; a node that no longer holds an
entry cannot testify to when it stored it, so it is never counted against a write concern.
"""

from __future__ import annotations

import bisect
import enum
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from replog.chaos.history import (
    Event,
    FaultEvent,
    FaultPhase,
    FinalEntry,
    FinalState,
    HealthEvent,
    OpEvent,
    OpType,
)

__all__ = ["Anomaly", "AnomalyReport", "CheckerConfig", "Counts", "Verdict", "check"]


class Anomaly(enum.Enum):
    LOST = "lost"  # an ok'd value missing on some node
    DUPLICATED = "duplicated"  # a value at two seqs of one node's log
    UNEXPECTED = "unexpected"  # a value never invoked, or one whose append failed definitely
    REORDERED = "reordered"  # nodes disagree at a seq, a node is not a prefix of the master, gaps
    WRITE_CONCERN = "write_concern"  # a 201 for w=k while fewer than k nodes held the seq
    READ_ONLY_ACCEPTED = "accepted_while_read_only"  # a 201 while the master said it was read-only


@dataclass(frozen=True)
class CheckerConfig:
    """Tolerances. Clocks agree (one host), but stored_at and the client's ok time are read by
    different processes, so a few milliseconds of slack avoid flagging scheduling noise."""

    master: str = "master"
    clock_tolerance_s: float = 0.005
    # The read-only rule is only definite if the master cannot go read-only -> writable ->
    # read-only between two observations; that takes at least the unhealthy-after time, so a
    # runner passes it here. None trusts any bracket, however wide.
    read_only_max_gap_s: float | None = None
    max_examples: int = 10


@dataclass(frozen=True)
class AnomalyReport:
    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class Counts:
    invoked: int
    ok: int
    fail: int
    timeout: int
    timeout_recovered: int  # timed out, but the value is on a node after healing
    timeout_not_landed: int
    pending: int  # invoked, never completed (the recorder died mid-call): indeterminate
    health_observations: int
    read_only_observations: int
    faults: int
    ok_by_w: Mapping[int, int] = field(default_factory=dict)
    node_entries: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    counts: Counts
    anomalies: Mapping[Anomaly, AnomalyReport]

    @property
    def ok(self) -> bool:
        return all(report.count == 0 for report in self.anomalies.values())

    def count(self, kind: Anomaly) -> int:
        return self.anomalies[kind].count

    def failed_kinds(self) -> frozenset[Anomaly]:
        return frozenset(kind for kind, report in self.anomalies.items() if report.count)


@dataclass(frozen=True)
class _Op:
    value: str
    process: int
    w: int
    invoked_at: float
    outcome: OpType | None  # None: never completed
    done_at: float | None
    seq: int | None


def _collect_ops(events: Sequence[OpEvent]) -> dict[str, _Op]:
    invokes: dict[str, OpEvent] = {}
    completions: dict[str, OpEvent] = {}
    for event in events:
        target = invokes if event.type is OpType.INVOKE else completions
        if event.value in target:
            raise ValueError(f"value {event.value!r} has two {event.type.value} events")
        target[event.value] = event
    if stray := completions.keys() - invokes.keys():
        raise ValueError(f"completions without an invoke: {sorted(stray)[:5]}")
    ops: dict[str, _Op] = {}
    for value, inv in invokes.items():
        done = completions.get(value)
        ops[value] = _Op(
            value=value,
            process=inv.process,
            w=inv.w,
            invoked_at=inv.time,
            outcome=None if done is None else done.type,
            done_at=None if done is None else done.time,
            seq=None if done is None else done.seq,
        )
    return ops


class _Findings:
    """Collects anomalies; keeps every count but only the first few examples."""

    def __init__(self, max_examples: int) -> None:
        self._max = max_examples
        self._counts: Counter[Anomaly] = Counter()
        self._examples: dict[Anomaly, list[str]] = defaultdict(list)

    def add(self, kind: Anomaly, example: str) -> None:
        self._counts[kind] += 1
        if len(self._examples[kind]) < self._max:
            self._examples[kind].append(example)

    def reports(self) -> dict[Anomaly, AnomalyReport]:
        return {k: AnomalyReport(self._counts[k], tuple(self._examples[k])) for k in Anomaly}


def _check_values(ops: Mapping[str, _Op], final: FinalState, found: _Findings) -> None:
    """Lost, duplicated and unexpected: which values are where, ignoring order.

    A value at different seqs on different nodes is a disagreement, reported as reordered.
    """
    for node, entries in final.items():
        per_node: dict[str, list[int]] = defaultdict(list)
        for entry in entries:
            per_node[entry.message].append(entry.seq)
        for value, seqs in per_node.items():
            if len(seqs) > 1:
                found.add(Anomaly.DUPLICATED, f"{value!r} on {node} at seqs {seqs}")
            op = ops.get(value)
            if op is None:
                found.add(
                    Anomaly.UNEXPECTED,
                    f"{value!r} on {node} at seq {seqs[0]}: never invoked",
                )
            elif op.outcome is OpType.FAIL:
                found.add(
                    Anomaly.UNEXPECTED,
                    f"{value!r} on {node} at seq {seqs[0]}: its append failed",
                )
        for op in ops.values():
            if op.outcome is OpType.OK and op.value not in per_node:
                found.add(
                    Anomaly.LOST,
                    f"{op.value!r} (seq {op.seq}, w={op.w}) missing on {node}",
                )


def _check_order(ops: Mapping[str, _Op], final: FinalState, master: str, found: _Findings) -> None:
    """Reordered: gaps or disorder on a node, a node that is not a prefix of the master, and
    a master that holds something other than the acknowledged value at an acknowledged seq."""
    for node, entries in final.items():
        for position, entry in enumerate(entries, start=1):
            if entry.seq != position:
                found.add(
                    Anomaly.REORDERED,
                    f"{node}: entry #{position} has seq {entry.seq}, not 1..k",
                )
                break
    master_at = {e.seq: e.message for e in final.get(master, ())}
    last = max(master_at, default=0)
    for node, entries in final.items():
        if node == master:
            continue
        for entry in entries:
            if entry.seq not in master_at:
                found.add(
                    Anomaly.REORDERED,
                    f"{node}: seq {entry.seq} beyond the master's last seq {last}",
                )
            elif master_at[entry.seq] != entry.message:
                found.add(
                    Anomaly.REORDERED,
                    f"{node}: seq {entry.seq} holds {entry.message!r}, master holds {master_at[entry.seq]!r}",
                )
    for op in ops.values():
        if op.seq is None or op.outcome is OpType.FAIL or op.seq not in master_at:
            continue
        if master_at[op.seq] != op.value:
            found.add(
                Anomaly.REORDERED,
                f"{op.value!r} was given seq {op.seq} but the master holds {master_at[op.seq]!r} there",
            )


def _check_write_concern(
    ops: Mapping[str, _Op], final: FinalState, tolerance_s: float, found: _Findings
) -> None:
    """Only nodes that still hold the acked entry can prove they stored it too late."""
    at: dict[str, dict[int, FinalEntry]] = {n: {e.seq: e for e in es} for n, es in final.items()}
    for op in ops.values():
        if op.outcome is not OpType.OK or op.seq is None or op.done_at is None:
            continue
        late: list[str] = []
        for node, by_seq in at.items():
            entry = by_seq.get(op.seq)
            if entry is not None and entry.message == op.value and entry.stored_at > op.done_at + tolerance_s:
                late.append(f"{node} +{entry.stored_at - op.done_at:.3f}s")
        if len(at) - len(late) < op.w:
            found.add(
                Anomaly.WRITE_CONCERN,
                f"{op.value!r} seq {op.seq} ok for w={op.w} but held by {len(at) - len(late)} node(s); "
                f"late: {', '.join(late)}",
            )


def _check_read_only(
    ops: Mapping[str, _Op],
    health: Sequence[HealthEvent],
    max_gap_s: float | None,
    found: _Findings,
) -> None:
    """Flag an ok only if the master was definitely read-only for the whole call.

    Rule: take the last observation answered at or before the invoke (h1) and the first one asked
    at or after the ok (h2). Flag iff h1, h2 and every observation between them said read_only,
    and (when max_gap_s is set) h2 arrived within max_gap_s of h1 being asked, too soon for the
    master to have become writable and read-only again unseen.
    """
    answered = [h.time for h in health]
    asked = [h.asked_at for h in health]
    # prefix count of writable observations, to test "all read-only in [i, j]" in O(1)
    writable_before = [0]
    for h in health:
        writable_before.append(writable_before[-1] + (not h.read_only))
    for op in ops.values():
        if op.outcome is not OpType.OK or op.done_at is None:
            continue
        i = bisect.bisect_right(answered, op.invoked_at) - 1
        j = bisect.bisect_left(asked, op.done_at)
        if i < 0 or j >= len(health) or i > j:
            continue
        if writable_before[j + 1] - writable_before[i] != 0:
            continue
        if max_gap_s is not None and health[j].time - health[i].asked_at > max_gap_s:
            continue
        found.add(
            Anomaly.READ_ONLY_ACCEPTED,
            f"{op.value!r} seq {op.seq} ok between read-only observations at "
            f"{health[i].time:.3f} and {health[j].time:.3f}",
        )


def check(events: Iterable[Event], final: FinalState, config: CheckerConfig | None = None) -> Verdict:
    """Judge one run: every anomaly kind is reported, with its count and a few examples."""
    cfg = config or CheckerConfig()
    op_events: list[OpEvent] = []
    health: list[HealthEvent] = []
    faults = 0
    for event in events:
        if isinstance(event, OpEvent):
            op_events.append(event)
        elif isinstance(event, HealthEvent):
            health.append(event)
        elif isinstance(event, FaultEvent) and event.phase is FaultPhase.START:
            faults += 1
    health.sort(key=lambda h: h.time)
    ops = _collect_ops(op_events)

    found = _Findings(cfg.max_examples)
    _check_values(ops, final, found)
    _check_order(ops, final, cfg.master, found)
    _check_write_concern(ops, final, cfg.clock_tolerance_s, found)
    _check_read_only(ops, health, cfg.read_only_max_gap_s, found)

    stored = {e.message for entries in final.values() for e in entries}
    by_outcome = Counter(op.outcome for op in ops.values())
    recovered = sum(1 for op in ops.values() if op.outcome is OpType.TIMEOUT and op.value in stored)
    counts = Counts(
        invoked=len(ops),
        ok=by_outcome[OpType.OK],
        fail=by_outcome[OpType.FAIL],
        timeout=by_outcome[OpType.TIMEOUT],
        timeout_recovered=recovered,
        timeout_not_landed=by_outcome[OpType.TIMEOUT] - recovered,
        pending=by_outcome[None],
        health_observations=len(health),
        read_only_observations=sum(1 for h in health if h.read_only),
        faults=faults,
        ok_by_w=dict(sorted(Counter(op.w for op in ops.values() if op.outcome is OpType.OK).items())),
        node_entries={node: len(entries) for node, entries in final.items()},
    )
    return Verdict(counts=counts, anomalies=found.reports())

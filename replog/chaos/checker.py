"""Check a recorded history against the final reads of every node.

A pure function: no clock, no I/O. It flags only what is definite from the evidence: an op that
timed out may or may not land, so it is counted, never flagged; a node that no longer holds an
entry cannot testify to when it stored it, so it is never counted against a write concern.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from replog.chaos.cluster_checks import ClusterCounts, ClusterEvidence, check_cluster, excused_values
from replog.chaos.findings import Anomaly, AnomalyReport, Findings, Op, collect_ops
from replog.chaos.history import (
    Event,
    FaultEvent,
    FaultPhase,
    FinalEntry,
    FinalState,
    HealthEvent,
    OpEvent,
    OpType,
    ReadEvent,
)

__all__ = ["Anomaly", "AnomalyReport", "CheckerConfig", "Counts", "Verdict", "check"]


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
    reads: int = 0  # readers' pages (cluster mode)
    ok_by_w: Mapping[int, int] = field(default_factory=dict)
    node_entries: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    counts: Counts
    anomalies: Mapping[Anomaly, AnomalyReport]
    cluster: ClusterCounts | None = None  # cluster mode only

    @property
    def ok(self) -> bool:
        return all(report.count == 0 for report in self.anomalies.values())

    def count(self, kind: Anomaly) -> int:
        return self.anomalies[kind].count

    def failed_kinds(self) -> frozenset[Anomaly]:
        return frozenset(kind for kind, report in self.anomalies.items() if report.count)


def _check_values(
    ops: Mapping[str, Op], final: FinalState, found: Findings, excused: Collection[str] = frozenset()
) -> None:
    """Lost, duplicated and unexpected: which values are where, ignoring order. `final` holds
    messages only (no control records); `excused` values may be missing (cluster mode: a small w
    rolled back, and found in a rollback file).

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
            if op.outcome is OpType.OK and op.value not in per_node and op.value not in excused:
                found.add(
                    Anomaly.LOST,
                    f"{op.value!r} (seq {op.seq}, w={op.w}) missing on {node}",
                )


def _check_order(
    ops: Mapping[str, Op],
    final: FinalState,
    master: str,
    found: Findings,
    binding: Callable[[Op], bool] = lambda op: op.outcome is not OpType.FAIL,
) -> None:
    """Reordered: gaps or disorder on a node, a node that is not a prefix of the master, and
    a master that holds something other than the value at a seq an op was given (for the ops
    `binding` says keep their seq: in static mode all but definite failures)."""
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
                    f"{node}: seq {entry.seq} holds {entry.message!r}, "
                    f"{master} holds {master_at[entry.seq]!r}",
                )
    for op in ops.values():
        if op.seq is None or not binding(op) or op.seq not in master_at:
            continue
        if master_at[op.seq] != op.value:
            found.add(
                Anomaly.REORDERED,
                f"{op.value!r} was given seq {op.seq} but {master} holds {master_at[op.seq]!r} there",
            )


def _check_write_concern(
    ops: Mapping[str, Op], final: FinalState, tolerance_s: float, found: Findings
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
    ops: Mapping[str, Op],
    health: Sequence[HealthEvent],
    max_gap_s: float | None,
    found: Findings,
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


def check(
    events: Iterable[Event],
    final: FinalState,
    config: CheckerConfig | None = None,
    cluster: ClusterEvidence | None = None,
) -> Verdict:
    """Judge one run: every anomaly kind is reported, with its count and a few examples. With
    `cluster` (a cluster-mode run), `config.master` names the final master, control records are
    left out of every comparison of messages, and the cluster rules apply
    (`replog.chaos.cluster_checks`)."""
    cfg = config or CheckerConfig()
    op_events: list[OpEvent] = []
    health: list[HealthEvent] = []
    faults = 0
    reads: list[ReadEvent] = []
    for event in events:
        if isinstance(event, OpEvent):
            op_events.append(event)
        elif isinstance(event, HealthEvent):
            health.append(event)
        elif isinstance(event, ReadEvent):
            reads.append(event)
        elif isinstance(event, FaultEvent) and event.phase is FaultPhase.START:
            faults += 1
    health.sort(key=lambda h: h.time)
    ops = collect_ops(op_events)

    found = Findings(cfg.max_examples)
    messages = {node: tuple(e for e in entries if e.is_message) for node, entries in final.items()}
    if cluster is None:
        _check_values(ops, messages, found)
        _check_order(ops, final, cfg.master, found)
        cluster_counts = None
    else:
        majority = cluster.majority
        present = {e.message for e in messages.get(cfg.master, ())}
        _check_values(ops, messages, found, excused_values(ops, messages, cluster))
        # a seq given to a write that may be rolled back binds only if the write survived
        _check_order(
            ops, final, cfg.master, found,
            lambda op: (op.outcome is OpType.OK and op.w >= majority) or op.value in present,
        )  # fmt: skip
        cluster_counts = check_cluster(
            ops, final, messages, cfg.master, cluster, found, cfg.clock_tolerance_s
        )
    _check_write_concern(ops, final, cfg.clock_tolerance_s, found)
    for read in reads:
        if read.problem is not None:
            found.add(Anomaly.BAD_READ, f"{read.node} from seq {read.from_seq}: {read.problem}")
    _check_read_only(ops, health, cfg.read_only_max_gap_s, found)

    stored = {e.message for entries in messages.values() for e in entries}
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
        reads=len(reads),
        ok_by_w=dict(sorted(Counter(op.w for op in ops.values() if op.outcome is OpType.OK).items())),
        node_entries={node: len(entries) for node, entries in messages.items()},
    )
    return Verdict(counts=counts, anomalies=found.reports(), cluster=cluster_counts)

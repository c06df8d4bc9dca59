"""What the checker's rules share: the anomaly kinds, one operation as the history tells it, and the
collector of findings (kept apart so the static-mode rules and the cluster-mode rules,
`replog.chaos.cluster_checks`, can both use them without importing each other)."""

from __future__ import annotations

import enum
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from replog.chaos.history import OpEvent, OpType

__all__ = ["Anomaly", "AnomalyReport", "Findings", "Op", "collect_ops"]


class Anomaly(enum.Enum):
    LOST = "lost"  # an ok'd value missing on some node
    DUPLICATED = "duplicated"  # a value at two seqs of one node's log
    UNEXPECTED = "unexpected"  # a value never invoked, or one whose append failed definitely
    REORDERED = "reordered"  # nodes disagree at a seq, a node is not a prefix of the master, gaps
    WRITE_CONCERN = "write_concern"  # a 201 for w=k while fewer than k nodes held the seq
    READ_ONLY_ACCEPTED = "accepted_while_read_only"  # a 201 while the master said it was read-only
    # cluster mode (FAILOVER.md §8)
    LOGS_DIFFER = "final_logs_differ"  # after healing and convergence, two nodes' logs are not the same
    TWO_MASTERS = "two_masters_in_one_epoch"  # two nodes master (or followed as master) in one epoch
    ACK_FROM_NON_MASTER = "ack_from_non_master"  # a 201 from a node for an epoch it was not master of
    ACK_AFTER_NEWER_MASTER = "ack_after_newer_master"  # a 201 sent after its epoch was superseded
    BAD_READ = "bad_read"  # a reader's page with a gap in its seqs or a value twice


@dataclass(frozen=True)
class AnomalyReport:
    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class Op:
    value: str
    process: int
    w: int
    invoked_at: float
    outcome: OpType | None  # None: never completed
    done_at: float | None
    seq: int | None
    node: str | None = None  # cluster mode: which node answered


def collect_ops(events: Sequence[OpEvent]) -> dict[str, Op]:
    invokes: dict[str, OpEvent] = {}
    completions: dict[str, OpEvent] = {}
    for event in events:
        target = invokes if event.type is OpType.INVOKE else completions
        if event.value in target:
            raise ValueError(f"value {event.value!r} has two {event.type.value} events")
        target[event.value] = event
    if stray := completions.keys() - invokes.keys():
        raise ValueError(f"completions without an invoke: {sorted(stray)[:5]}")
    ops: dict[str, Op] = {}
    for value, inv in invokes.items():
        done = completions.get(value)
        ops[value] = Op(
            value=value,
            process=inv.process,
            w=inv.w,
            invoked_at=inv.time,
            outcome=None if done is None else done.type,
            done_at=None if done is None else done.time,
            seq=None if done is None else done.seq,
            node=None if done is None else done.node,
        )
    return ops


class Findings:
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

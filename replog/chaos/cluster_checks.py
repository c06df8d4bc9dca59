"""The checker's cluster-mode rules (FAILOVER.md §8), pure like the rest of the checker.

With failover, the evidence grows: each node's `roles.jsonl` (every (epoch, role) change it made)
and `rollback.jsonl` (every entry it removed because it diverged from a master's log). The rules:

- a 201 with w >= majority is on every node, once, at the seq it was given (the static rules LOST,
  DUPLICATED and REORDERED, applied to it unconditionally);
- a 201 with a smaller w is either in the final logs or in some node's rollback file (counted
  both ways); missing from both, it is LOST;
- every node's final log is the same, control records and epochs included (LOGS_DIFFER): a node
  left behind with a conflicting suffix is an anomaly, not a tolerated lag;
- at most one master per epoch, from every node's role history: the nodes that say they were
  master in an epoch and the masters the others followed in it name one node (TWO_MASTERS);
- no 201 from a node for an epoch in which it was not master (ACK_FROM_NON_MASTER): the epoch is
  the acknowledged entry's own, read from the final log (or the rollback file), and the answering
  node is recorded by the writer;
- no 201 for an entry of an epoch that a newer master had ended before the request was sent
  (ACK_AFTER_NEWER_MASTER): a zombie master's lease runs out before anyone else can be elected.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from replog.chaos.findings import Anomaly, Findings, Op
from replog.chaos.history import FinalEntry, FinalState, OpType

__all__ = [
    "ClusterCounts",
    "ClusterEvidence",
    "RoleRecord",
    "RolledBack",
    "check_cluster",
    "excused_values",
    "role_from_dict",
    "rolled_back_from_dict",
]


@dataclass(frozen=True)
class RoleRecord:
    """One line of a node's roles.jsonl."""

    time: float
    epoch: int
    role: str
    master: str | None  # the URL this node follows (itself when master), None when unknown


@dataclass(frozen=True)
class RolledBack:
    """One line of a node's rollback.jsonl: an entry it removed from its log."""

    seq: int
    epoch: int
    kind: str
    message: str


@dataclass(frozen=True)
class ClusterEvidence:
    """What a cluster-mode run adds to the history and the final reads."""

    majority: int  # of all members
    urls: Mapping[str, str]  # node name -> its URL as spelled in the member list
    roles: Mapping[str, tuple[RoleRecord, ...]] = field(default_factory=dict)
    rollbacks: Mapping[str, tuple[RolledBack, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterCounts:
    failovers: int  # epochs that had a master, after the first
    masters: Mapping[int, tuple[str, ...]]  # epoch -> the node(s) master in it
    ok_below_majority: int  # 201s with w below a majority
    ok_below_majority_present: int  # ... of which in the final logs
    ok_below_majority_rolled_back: int  # ... of which only in a rollback file
    rolled_back_entries: Mapping[str, int]  # node -> lines in its rollback file
    acks_epoch_checked: int  # 201s whose answering node and entry epoch were both known


def role_from_dict(raw: Mapping[str, Any]) -> RoleRecord:
    master = raw.get("master")
    return RoleRecord(
        float(raw["time"]), int(raw["epoch"]), str(raw["role"]), None if master is None else str(master)
    )


def rolled_back_from_dict(raw: Mapping[str, Any]) -> RolledBack:
    return RolledBack(
        int(raw["seq"]), int(raw.get("epoch", 1)), str(raw.get("kind", "message")), str(raw["message"])
    )


def _rolled_back_messages(evidence: ClusterEvidence) -> dict[str, RolledBack]:
    """Message value -> one rollback line holding it (control records are not messages)."""
    return {
        line.message: line
        for lines in evidence.rollbacks.values()
        for line in lines
        if line.kind == "message"
    }


def excused_values(ops: Mapping[str, Op], messages: FinalState, evidence: ClusterEvidence) -> set[str]:
    """201s with w below a majority that some node lacks but some rollback file holds: the
    documented price of a small w, not a loss."""
    rolled = _rolled_back_messages(evidence)
    everywhere = (
        set.intersection(*({e.message for e in es} for es in messages.values())) if messages else set()
    )
    return {
        op.value
        for op in ops.values()
        if op.outcome is OpType.OK
        and op.w < evidence.majority
        and op.value not in everywhere
        and op.value in rolled
    }


def _check_identical(final: FinalState, reference: str, found: Findings) -> None:
    def shape(entries: Iterable[FinalEntry]) -> list[tuple[int, int, str, str]]:
        return [(e.seq, e.epoch, e.kind, e.message) for e in entries]

    expected = shape(final.get(reference, ()))
    for node, entries in final.items():
        got = shape(entries)
        if node == reference or got == expected:
            continue
        at = next(
            (i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
            min(len(got), len(expected)),
        )
        mine = got[at] if at < len(got) else "nothing"
        theirs = expected[at] if at < len(expected) else "nothing"
        found.add(
            Anomaly.LOGS_DIFFER,
            f"{node} ({len(got)} entries) differs from {reference} ({len(expected)}) at entry #{at + 1}: "
            f"{mine} against {theirs}",
        )


def _masters_by_epoch(evidence: ClusterEvidence) -> dict[int, set[str]]:
    """Epoch -> every URL named master in it: by the node itself, or by a node following it."""
    named: dict[int, set[str]] = defaultdict(set)
    for node, records in evidence.roles.items():
        for record in records:
            if record.role == "master":
                named[record.epoch].add(evidence.urls.get(node, node))
            elif record.master is not None:
                named[record.epoch].add(record.master)
    return named


def _check_one_master(evidence: ClusterEvidence, found: Findings) -> None:
    for epoch, urls in sorted(_masters_by_epoch(evidence).items()):
        if len(urls) > 1:
            found.add(Anomaly.TWO_MASTERS, f"epoch {epoch} had masters {sorted(urls)}")


def _newer_master_since(evidence: ClusterEvidence) -> Callable[[int], float | None]:
    """epoch -> the earliest time a node recorded itself master of a newer epoch (None: never)."""
    first: dict[int, float] = {}
    for records in evidence.roles.values():
        for record in records:
            if record.role == "master":
                first[record.epoch] = min(record.time, first.get(record.epoch, record.time))
    epochs = sorted(first)
    since: list[float] = []  # since[i]: the earliest master time of epochs[i:] (suffix minimum)
    for epoch in reversed(epochs):
        since.insert(0, min(first[epoch], since[0]) if since else first[epoch])

    def newer(epoch: int) -> float | None:
        i = bisect.bisect_right(epochs, epoch)
        return since[i] if i < len(epochs) else None

    return newer


def _check_acks(
    ops: Mapping[str, Op],
    final: FinalState,
    reference: str,
    evidence: ClusterEvidence,
    tolerance_s: float,
    found: Findings,
) -> int:
    """Each 201 against the role histories, by its entry's own epoch (from the final log, or the
    rollback file): its answering node was master in that epoch (ACK_FROM_NON_MASTER), and no
    master of a newer epoch existed before the request was even sent (ACK_AFTER_NEWER_MASTER: a
    zombie master acknowledging after its lease ran out). Returns how many 201s it could place (an
    ack whose entry is unknown proves nothing either way)."""
    was_master = {
        (node, record.epoch)
        for node, records in evidence.roles.items()
        for record in records
        if record.role == "master"
    }
    newer_since = _newer_master_since(evidence)
    at = {e.seq: e for e in final.get(reference, ())}
    rolled = _rolled_back_messages(evidence)
    checked = 0
    for op in ops.values():
        if op.outcome is not OpType.OK or op.seq is None:
            continue
        entry = at.get(op.seq)
        if entry is not None and entry.message == op.value and entry.is_message:
            epoch = entry.epoch
        elif op.value in rolled:
            epoch = rolled[op.value].epoch
        else:
            continue
        checked += 1
        if op.node is not None and (op.node, epoch) not in was_master:
            found.add(
                Anomaly.ACK_FROM_NON_MASTER,
                f"{op.value!r} seq {op.seq} (epoch {epoch}) acknowledged by {op.node}, "
                f"which was not master in epoch {epoch}",
            )
        newer = newer_since(epoch)
        if newer is not None and op.invoked_at > newer + tolerance_s:
            found.add(
                Anomaly.ACK_AFTER_NEWER_MASTER,
                f"{op.value!r} seq {op.seq} (epoch {epoch}, by {op.node}) sent {op.invoked_at - newer:.3f}s "
                "after a master of a newer epoch existed",
            )
    return checked


def check_cluster(
    ops: Mapping[str, Op],
    final: FinalState,
    messages: FinalState,
    reference: str,
    evidence: ClusterEvidence,
    found: Findings,
    tolerance_s: float = 0.005,
) -> ClusterCounts:
    """The cluster-mode rules beyond the static ones; `reference` is the final master's name."""
    _check_identical(final, reference, found)
    _check_one_master(evidence, found)
    checked = _check_acks(ops, final, reference, evidence, tolerance_s, found)
    stored = {e.message for entries in messages.values() for e in entries}
    small = [op for op in ops.values() if op.outcome is OpType.OK and op.w < evidence.majority]
    excused = excused_values(ops, messages, evidence)
    masters: dict[int, set[str]] = defaultdict(set)
    for node, records in evidence.roles.items():
        for record in records:
            if record.role == "master":
                masters[record.epoch].add(node)
    return ClusterCounts(
        failovers=max(0, len(masters) - 1),
        masters={epoch: tuple(sorted(nodes)) for epoch, nodes in sorted(masters.items())},
        ok_below_majority=len(small),
        ok_below_majority_present=sum(1 for op in small if op.value in stored),
        ok_below_majority_rolled_back=sum(
            1 for op in small if op.value in excused and op.value not in stored
        ),
        rolled_back_entries={node: len(lines) for node, lines in evidence.rollbacks.items()},
        acks_epoch_checked=checked,
    )

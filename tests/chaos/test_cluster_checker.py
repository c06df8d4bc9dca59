"""The checker's cluster-mode rules on doctored histories: each rule catches its anomaly, and the
correct story (a failover that rolls back a w=1 write) passes.

The story: a is master of epoch 2 and acknowledges p0-0 (w=2), p0-1 (w=3) and p0-2 (w=1); a dies
before p0-2 leaves it; b wins epoch 3, writes its epoch-start record at seq 4 and acknowledges p0-3
(w=2); a comes back as b's secondary and moves p0-2 to its rollback file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from replog.chaos.checker import Anomaly, CheckerConfig, Verdict, check
from replog.chaos.cluster_checks import (
    ClusterEvidence,
    RoleRecord,
    RolledBack,
    role_from_dict,
    rolled_back_from_dict,
)
from replog.chaos.history import (
    Event,
    FinalEntry,
    OpEvent,
    OpType,
    ReadEvent,
    dump_final,
    event_from_dict,
    event_to_dict,
    final_from_dict,
)
from replog.chaos.report import render_summary, verdict_to_dict

URLS = {"a": "http://10.0.0.10:7000", "b": "http://10.0.0.11:7000", "c": "http://10.0.0.12:7000"}
T0 = 1_000.0


def _start(seq: int, epoch: int, at: float) -> FinalEntry:
    return FinalEntry(seq, "", at, epoch, "epoch_start")


@dataclass
class Story:
    events: list[Event] = field(default_factory=list)
    final: dict[str, list[FinalEntry]] = field(default_factory=dict)
    roles: dict[str, list[RoleRecord]] = field(default_factory=dict)
    rollbacks: dict[str, list[RolledBack]] = field(default_factory=dict)

    def ack(self, value: str, w: int, seq: int, node: str | None, at: float) -> None:
        self.events.append(OpEvent(OpType.INVOKE, 0, value, w, at - 0.01))
        self.events.append(OpEvent(OpType.OK, 0, value, w, at, seq=seq, status=201, acks=w, node=node))

    def verdict(self, reference: str = "b") -> Verdict:
        evidence = ClusterEvidence(
            majority=2,
            urls=URLS,
            roles={n: tuple(r) for n, r in self.roles.items()},
            rollbacks={n: tuple(r) for n, r in self.rollbacks.items()},
        )
        final = {n: tuple(es) for n, es in self.final.items()}
        return check(self.events, final, CheckerConfig(master=reference), evidence)


def story() -> Story:
    s = Story()
    s.ack("p0-0", 2, 2, "a", T0 + 1)
    s.ack("p0-1", 3, 3, "a", T0 + 2)
    s.ack("p0-2", 1, 4, "a", T0 + 3)
    s.ack("p0-3", 2, 5, "b", T0 + 10)
    log = [
        _start(1, 2, T0),
        FinalEntry(2, "p0-0", T0 + 0.5, 2),
        FinalEntry(3, "p0-1", T0 + 1.5, 2),
        _start(4, 3, T0 + 8),
        FinalEntry(5, "p0-3", T0 + 9.5, 3),
    ]
    s.final = {n: list(log) for n in URLS}
    s.roles = {
        "a": [RoleRecord(T0, 1, "secondary", None), RoleRecord(T0, 2, "master", URLS["a"]),
              RoleRecord(T0 + 9, 3, "secondary", URLS["b"])],
        "b": [RoleRecord(T0, 1, "secondary", None), RoleRecord(T0, 2, "secondary", URLS["a"]),
              RoleRecord(T0 + 8, 3, "master", URLS["b"])],
        "c": [RoleRecord(T0, 1, "secondary", None), RoleRecord(T0, 2, "secondary", URLS["a"]),
              RoleRecord(T0 + 8, 3, "secondary", URLS["b"])],
    }  # fmt: skip
    s.rollbacks = {"a": [RolledBack(4, 2, "message", "p0-2")], "b": [], "c": []}
    return s


def test_a_failover_that_rolls_back_a_w1_write_is_clean_and_counted() -> None:
    verdict = story().verdict()
    assert verdict.ok, render_summary(verdict)
    cluster = verdict.cluster
    assert cluster is not None
    assert cluster.failovers == 1
    assert dict(cluster.masters) == {2: ("a",), 3: ("b",)}
    assert cluster.ok_below_majority == 1
    assert (cluster.ok_below_majority_present, cluster.ok_below_majority_rolled_back) == (0, 1)
    assert cluster.rolled_back_entries == {"a": 1, "b": 0, "c": 0}
    assert cluster.acks_epoch_checked == 4
    # control records are not messages: never unexpected, duplicated or counted as entries
    assert verdict.counts.node_entries == {"a": 3, "b": 3, "c": 3}
    assert verdict_to_dict(verdict)["cluster"]["failovers"] == 1
    assert "failovers" in render_summary(verdict)


def test_a_w1_write_that_survived_is_counted_present() -> None:
    s = story()
    s.rollbacks["a"] = []
    for node in URLS:  # p0-2 made it to b before a died: b kept it, then its epoch-start record
        s.final[node][3:] = [
            FinalEntry(4, "p0-2", T0 + 2.9, 2),
            _start(5, 3, T0 + 8),
            FinalEntry(6, "p0-3", T0 + 9.5, 3),
        ]
    s.events[-1] = dataclasses.replace(s.events[-1], seq=6)  # type: ignore[type-var]
    verdict = s.verdict()
    assert verdict.ok, render_summary(verdict)
    assert verdict.cluster is not None and verdict.cluster.ok_below_majority_present == 1


def test_a_w1_write_neither_present_nor_rolled_back_is_lost() -> None:
    s = story()
    s.rollbacks["a"] = []
    assert s.verdict().failed_kinds() == {Anomaly.LOST}


def test_a_majority_write_found_only_in_a_rollback_file_is_lost_not_excused() -> None:
    s = story()
    s.events = [dataclasses.replace(e, w=2) if e.value == "p0-2" else e for e in s.events]  # type: ignore[union-attr]
    # lost, and its seq holds something else: both the value and the order rules see it
    assert s.verdict().failed_kinds() == {Anomaly.LOST, Anomaly.REORDERED}


def test_a_majority_write_at_another_seq_than_acknowledged_is_reordered() -> None:
    s = story()
    for node in URLS:
        entries = s.final[node]
        entries[1], entries[2] = (
            dataclasses.replace(entries[2], seq=2),
            dataclasses.replace(entries[1], seq=3),
        )
    assert s.verdict().failed_kinds() == {Anomaly.REORDERED}


def test_a_seq_given_to_a_write_of_unknown_outcome_that_was_rolled_back_binds_nothing() -> None:
    s = story()
    # p0-2 answered master_changed (outcome unknown, seq 4) instead of 201: rolled back, seq reused
    s.events = [
        dataclasses.replace(e, type=OpType.TIMEOUT, status=503)  # type: ignore[type-var]
        if e.value == "p0-2" and e.type is OpType.OK
        else e
        for e in s.events
    ]
    verdict = s.verdict()
    assert verdict.ok, render_summary(verdict)
    assert verdict.counts.timeout == 1


def test_a_node_left_behind_with_a_conflicting_suffix_makes_the_logs_differ() -> None:
    s = story()
    s.rollbacks["a"] = []
    s.final["a"] = [*s.final["a"][:3], FinalEntry(4, "p0-2", T0 + 2.9, 2)]  # refused, never rolled back
    assert Anomaly.LOGS_DIFFER in s.verdict().failed_kinds()


def test_logs_that_differ_only_in_a_control_record_differ() -> None:
    s = story()
    s.final["c"][3] = _start(4, 4, T0 + 8)  # same message (none), another epoch
    verdict = s.verdict()
    assert verdict.failed_kinds() == {Anomaly.LOGS_DIFFER}
    example = verdict.anomalies[Anomaly.LOGS_DIFFER].examples[0]
    assert "c (5 entries) differs from b (5) at entry #4" in example


def test_two_nodes_master_in_one_epoch() -> None:
    s = story()
    s.roles["c"].append(RoleRecord(T0 + 8.5, 3, "master", URLS["c"]))
    verdict = s.verdict()
    assert verdict.failed_kinds() == {Anomaly.TWO_MASTERS}
    assert "epoch 3" in verdict.anomalies[Anomaly.TWO_MASTERS].examples[0]


def test_a_node_following_another_master_in_the_same_epoch_is_two_masters() -> None:
    s = story()
    s.roles["c"][-1] = RoleRecord(T0 + 8, 3, "secondary", URLS["c"])  # c followed c while b was master
    assert s.verdict().failed_kinds() == {Anomaly.TWO_MASTERS}


def test_an_ack_from_a_node_that_was_not_master_of_the_entry_epoch() -> None:
    s = story()
    s.events = [dataclasses.replace(e, node="a") if e.value == "p0-3" else e for e in s.events]  # type: ignore[union-attr]
    verdict = s.verdict()
    assert verdict.failed_kinds() == {Anomaly.ACK_FROM_NON_MASTER}
    assert "epoch 3" in verdict.anomalies[Anomaly.ACK_FROM_NON_MASTER].examples[0]


def test_an_ack_from_a_deposed_master_for_a_rolled_back_entry_of_its_new_epoch() -> None:
    s = story()
    s.rollbacks["a"] = [RolledBack(4, 3, "message", "p0-2")]  # tagged epoch 3: b's epoch, not a's
    assert s.verdict().failed_kinds() == {Anomaly.ACK_FROM_NON_MASTER}


def test_cluster_fields_round_trip_through_json() -> None:
    s = story()
    final = {n: tuple(es) for n, es in s.final.items()}
    assert final_from_dict(dump_final(final)) == final
    for event in s.events:
        assert event_from_dict(event_to_dict(event)) == event
    assert role_from_dict({"time": 1.0, "epoch": 3, "role": "master", "master": "u"}) == RoleRecord(
        1.0, 3, "master", "u"
    )
    line = {"seq": 4, "epoch": 2, "kind": "message", "key": None, "message": "x", "removed_at": 2.0}
    assert rolled_back_from_dict(line) == RolledBack(4, 2, "message", "x")


def test_a_readers_page_with_a_value_twice_is_a_bad_read() -> None:
    s = story()
    s.events.append(ReadEvent(T0 + 11, "c", 1, 5, None))
    assert s.verdict().ok
    s.events.append(ReadEvent(T0 + 12, "c", 1, 5, "values twice in one read: ['p0-1']"))
    verdict = s.verdict()
    assert verdict.failed_kinds() == {Anomaly.BAD_READ}
    assert verdict.counts.reads == 2
    assert event_from_dict(event_to_dict(s.events[-1])) == s.events[-1]


def _move_ack(s: Story, value: str, at: float) -> None:
    s.events = [
        dataclasses.replace(e, time=at - 0.01 if e.type is OpType.INVOKE else at)  # type: ignore[union-attr]
        if getattr(e, "value", None) == value
        else e
        for e in s.events
    ]


def test_a_zombie_master_acknowledging_a_write_sent_after_a_newer_master_existed() -> None:
    s = story()
    _move_ack(s, "p0-2", T0 + 9)  # a, paused past its lease, wakes and acknowledges in epoch 2
    verdict = s.verdict()
    assert verdict.failed_kinds() == {Anomaly.ACK_AFTER_NEWER_MASTER}
    assert "epoch 2, by a" in verdict.anomalies[Anomaly.ACK_AFTER_NEWER_MASTER].examples[0]


def test_a_write_sent_before_the_newer_master_existed_may_be_acknowledged_after() -> None:
    s = story()
    s.events = [
        dataclasses.replace(e, time=T0 + 7.9 if e.type is OpType.INVOKE else T0 + 8.2)  # type: ignore[union-attr]
        if getattr(e, "value", None) == "p0-2"
        else e
        for e in s.events
    ]
    assert s.verdict().ok

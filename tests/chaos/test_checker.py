"""The checker catches each kind of anomaly, and only that kind; a correct run passes.

A tiny model of a correct cluster builds consistent histories and final reads; each test doctors
one thing and expects exactly one anomaly kind.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replog.chaos.checker import Anomaly, CheckerConfig, Verdict, check
from replog.chaos.history import (
    Event,
    FaultEvent,
    FaultPhase,
    FinalEntry,
    HealthEvent,
    OpEvent,
    OpType,
    dump_final,
    event_from_dict,
    event_to_dict,
    final_from_dict,
    parse_history,
)
from replog.chaos.report import render_summary, verdict_to_dict

NODES = ("master", "s1", "s2")
T0 = 1_000.0
STEP = 0.02


class Outcome(enum.Enum):
    OK = "ok"
    FAIL = "fail"
    TIMEOUT_504 = "504"  # stored on the master, replicates later
    TIMEOUT_LOST = "conn"  # connection error before the master stored anything


@dataclass(frozen=True)
class Spec:
    outcome: Outcome
    w: int = 1


@dataclass
class Run:
    events: list[Event]
    final: dict[str, tuple[FinalEntry, ...]]

    def entries(self, node: str) -> list[FinalEntry]:
        return list(self.final[node])

    def check(self, config: CheckerConfig | None = None) -> Verdict:
        return check(self.events, self.final, config)


def build(specs: Sequence[Spec], read_only_ops: Collection[int] = ()) -> Run:
    """A correct cluster: the master and w-1 secondaries store before the ok, the rest after.

    Observation j (just before op j) says read_only iff op j or op j-1 is in read_only_ops, so
    each such op is bracketed by read-only observations and no other op is.
    """
    events: list[Event] = []
    logs: dict[str, list[FinalEntry]] = {n: [] for n in NODES}
    seq = 0
    for i, spec in enumerate(specs):
        t = T0 + i * STEP
        ro = i in read_only_ops or (i - 1) in read_only_ops
        events.append(HealthEvent(time=t - 0.004, sent=t - 0.005, read_only=ro))
        value = f"v{i}"
        events.append(OpEvent(OpType.INVOKE, process=i % 3, value=value, w=spec.w, time=t))
        done = t + 0.010
        if spec.outcome in (Outcome.OK, Outcome.TIMEOUT_504):
            seq += 1
            for rank, node in enumerate(NODES):
                early = rank < spec.w if spec.outcome is Outcome.OK else rank == 0
                stored_at = t + 0.001 * (rank + 1) if early else done + 0.5
                logs[node].append(FinalEntry(seq=seq, message=value, stored_at=stored_at))
        if spec.outcome is Outcome.OK:
            events.append(
                OpEvent(
                    OpType.OK,
                    i % 3,
                    value,
                    spec.w,
                    done,
                    seq=seq,
                    status=201,
                    acks=spec.w,
                )
            )
        elif spec.outcome is Outcome.FAIL:
            events.append(OpEvent(OpType.FAIL, i % 3, value, spec.w, done, status=503))
        elif spec.outcome is Outcome.TIMEOUT_504:
            events.append(
                OpEvent(
                    OpType.TIMEOUT,
                    i % 3,
                    value,
                    spec.w,
                    done,
                    seq=seq,
                    status=504,
                    acks=1,
                )
            )
        else:
            events.append(OpEvent(OpType.TIMEOUT, i % 3, value, spec.w, done))
    end = T0 + len(specs) * STEP
    events.append(HealthEvent(time=end + 0.001, sent=end, read_only=(len(specs) - 1) in read_only_ops))
    events.append(FaultEvent(time=T0, fault="kill", target="s1", phase=FaultPhase.START))
    events.append(FaultEvent(time=end, fault="kill", target="s1", phase=FaultPhase.END))
    return Run(events, {n: tuple(es) for n, es in logs.items()})


MIXED = [
    Spec(Outcome.OK, 1),
    Spec(Outcome.OK, 2),
    Spec(Outcome.OK, 3),
    Spec(Outcome.FAIL, 2),
    Spec(Outcome.TIMEOUT_504, 3),
    Spec(Outcome.TIMEOUT_LOST, 1),
    Spec(Outcome.OK, 3),
    Spec(Outcome.OK, 1),
]


def only(verdict: Verdict, kind: Anomaly) -> None:
    assert verdict.failed_kinds() == {kind}, render_summary(verdict)
    assert not verdict.ok


def test_clean_history_passes_and_counts() -> None:
    verdict = build(MIXED).check()
    assert verdict.ok, render_summary(verdict)
    c = verdict.counts
    assert (c.invoked, c.ok, c.fail, c.timeout) == (8, 5, 1, 2)
    assert (c.timeout_recovered, c.timeout_not_landed, c.pending) == (1, 1, 0)
    assert dict(c.ok_by_w) == {1: 2, 2: 1, 3: 2}
    assert c.faults == 1
    assert dict(c.node_entries) == {"master": 6, "s1": 6, "s2": 6}


def test_lost_ack() -> None:
    run = build(MIXED)  # the last op is an ok with w=1: only the master had to hold it
    run.final["s2"] = run.final["s2"][:-1]
    verdict = run.check()
    only(verdict, Anomaly.LOST)
    assert verdict.count(Anomaly.LOST) == 1
    assert "'v7'" in verdict.anomalies[Anomaly.LOST].examples[0]


def test_duplicate_on_every_node() -> None:
    run = build(MIXED)
    for node in NODES:
        first = run.final[node][0]
        run.final[node] += (
            FinalEntry(seq=len(run.final[node]) + 1, message=first.message, stored_at=T0 + 9),
        )
    only(run.check(), Anomaly.DUPLICATED)


def test_unexpected_value() -> None:
    run = build(MIXED)
    for node in NODES:
        run.final[node] += (FinalEntry(seq=len(run.final[node]) + 1, message="ghost", stored_at=T0 + 9),)
    only(run.check(), Anomaly.UNEXPECTED)


def test_failed_append_that_landed_is_unexpected() -> None:
    run = build([Spec(Outcome.OK), Spec(Outcome.FAIL)])
    for node in NODES:
        run.final[node] += (FinalEntry(seq=2, message="v1", stored_at=T0 + 9),)
    only(run.check(), Anomaly.UNEXPECTED)


def test_swap_on_one_secondary() -> None:
    run = build(MIXED)
    s1 = run.entries("s1")
    a, b = s1[1], s1[2]
    s1[1] = dataclasses.replace(a, message=b.message)
    s1[2] = dataclasses.replace(b, message=a.message)
    run.final["s1"] = tuple(s1)
    verdict = run.check()
    only(verdict, Anomaly.REORDERED)
    assert verdict.count(Anomaly.REORDERED) == 2


def test_secondary_not_a_prefix_of_master() -> None:
    # v5 timed out with a connection error: it may land, but not on s1 alone
    run = build(MIXED)
    run.final["s1"] += (FinalEntry(seq=len(run.final["s1"]) + 1, message="v5", stored_at=T0 + 9),)
    verdict = run.check()
    only(verdict, Anomaly.REORDERED)
    assert verdict.counts.timeout_recovered == 2


def test_gap_on_a_node_is_reordered() -> None:
    run = build(MIXED)
    # v4 timed out, so it is not lost, but s1 now has a hole
    run.final["s1"] = tuple(e for e in run.final["s1"] if e.seq != 4)
    only(run.check(), Anomaly.REORDERED)


def test_master_holds_another_value_at_an_acked_seq() -> None:
    run = build([Spec(Outcome.OK), Spec(Outcome.OK)])
    for node in NODES:  # every node agrees, but not with what the clients were told
        run.final[node] = tuple(
            dataclasses.replace(e, message=f"v{1 - i}") for i, e in enumerate(run.final[node])
        )
    only(run.check(), Anomaly.REORDERED)


def test_write_concern_violation() -> None:
    run = build(MIXED)  # op 2: ok for w=3 at seq 3
    s2 = run.entries("s2")
    s2[2] = dataclasses.replace(s2[2], stored_at=T0 + 2 * STEP + 0.1)
    run.final["s2"] = tuple(s2)
    verdict = run.check()
    only(verdict, Anomaly.WRITE_CONCERN)
    assert "'v2'" in verdict.anomalies[Anomaly.WRITE_CONCERN].examples[0]


def test_write_concern_allows_clock_tolerance() -> None:
    run = build(MIXED)
    s2 = run.entries("s2")
    s2[2] = dataclasses.replace(s2[2], stored_at=T0 + 2 * STEP + 0.010 + 0.003)
    run.final["s2"] = tuple(s2)
    assert run.check().ok
    only(run.check(CheckerConfig(clock_tolerance_s=0.001)), Anomaly.WRITE_CONCERN)


def test_accepted_while_read_only() -> None:
    # op 1 is ok'd inside a read-only bracket; op 4 is too, but it timed out
    run = build(MIXED, read_only_ops={1, 4})
    verdict = run.check()
    only(verdict, Anomaly.READ_ONLY_ACCEPTED)
    assert verdict.count(Anomaly.READ_ONLY_ACCEPTED) == 1
    assert verdict.counts.read_only_observations == 4


def test_read_only_needs_a_tight_bracket_when_asked() -> None:
    run = build(MIXED, read_only_ops={1})
    assert run.check(CheckerConfig(read_only_max_gap_s=0.001)).ok
    only(run.check(CheckerConfig(read_only_max_gap_s=1.0)), Anomaly.READ_ONLY_ACCEPTED)


def test_read_only_not_flagged_without_a_closing_observation() -> None:
    run = build(MIXED, read_only_ops={1})
    run.events = [e for e in run.events if not (isinstance(e, HealthEvent) and e.time > T0 + STEP)]
    assert run.check().ok


def test_read_only_not_flagged_if_writable_seen_inside() -> None:
    run = build(MIXED, read_only_ops={1})
    run.events.append(HealthEvent(time=T0 + STEP + 0.006, sent=T0 + STEP + 0.005, read_only=False))
    assert run.check().ok


def test_history_round_trip_and_torn_last_line() -> None:
    run = build(MIXED)
    text = "".join(json.dumps(event_to_dict(e)) + "\n" for e in run.events)
    assert list(parse_history(io.StringIO(text + '{"type": "inv'))) == run.events
    with pytest.raises(ValueError, match="malformed"):
        list(parse_history(io.StringIO('{"type": \n' + text)))
    assert final_from_dict(json.loads(json.dumps(dump_final(run.final)))) == run.final
    health = event_from_dict({"type": "health", "time": 1, "read_only": True})
    assert isinstance(health, HealthEvent) and health.asked_at == 1.0


def test_inconsistent_history_is_refused() -> None:
    ok = OpEvent(OpType.OK, 0, "x", 1, T0, seq=1)
    with pytest.raises(ValueError, match="without an invoke"):
        check([ok], {n: () for n in NODES})


def test_report_renders_every_kind() -> None:
    run = build(MIXED)
    run.final["s2"] = run.final["s2"][:-1]
    verdict = run.check()
    table = render_summary(verdict)
    for kind in Anomaly:
        assert kind.value in table
    assert "ANOMALIES FOUND" in table
    as_json = verdict_to_dict(verdict)
    assert as_json["ok"] is False and as_json["anomalies"]["lost"]["count"] == 1
    json.dumps(as_json)


specs = st.lists(
    st.builds(Spec, st.sampled_from(Outcome), st.integers(min_value=1, max_value=3)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(specs=specs, data=st.data())
def test_any_correct_run_passes_and_any_swap_is_caught(specs: list[Spec], data: st.DataObject) -> None:
    run = build(specs)
    assert run.check().ok
    node = data.draw(st.sampled_from(NODES))
    entries = run.entries(node)
    if len(entries) < 2:
        return
    i, j = data.draw(st.lists(st.integers(0, len(entries) - 1), min_size=2, max_size=2, unique=True))
    entries[i], entries[j] = (
        dataclasses.replace(entries[i], message=entries[j].message),
        dataclasses.replace(entries[j], message=entries[i].message),
    )
    run.final[node] = tuple(entries)
    assert Anomaly.REORDERED in run.check().failed_kinds()


@settings(max_examples=60, deadline=None)
@given(specs=specs, data=st.data())
def test_dropping_an_acked_entry_is_lost(specs: list[Spec], data: st.DataObject) -> None:
    run = build(specs)
    acked = [e for e in run.events if isinstance(e, OpEvent) and e.type is OpType.OK]
    if not acked:
        return
    victim = data.draw(st.sampled_from(acked))
    node = data.draw(st.sampled_from(NODES))
    run.final[node] = tuple(e for e in run.final[node] if e.message != victim.value)
    assert Anomaly.LOST in run.check().failed_kinds()

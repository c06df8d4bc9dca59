"""The secondary link: handshake, batches in order, one in flight, retries with backoff, catch-up."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pykka
import pytest

from replog.actors.gate import Acked, LinkVerdict, MasterStored
from replog.actors.link import (
    Describe,
    NodeStatus,
    Probed,
    SecondaryLink,
    StoredSeqFanout,
    Wake,
    WakeSignal,
)
from replog.actors.threads import event_stamp
from replog.config import LinkConfig
from replog.core.backoff import BackoffPolicy
from replog.core.health import Status
from replog.core.records import CorruptLog
from replog.core.replication import LinkState, Send
from replog.core.wire import Entry
from replog.storage.failure import StorageError
from replog.storage.store import MemoryStore, Store

from .fakes import FakeTransport, Recorder, received

WaitFor = Callable[..., Any]  # the `wait_for` fixture
URL = "http://s1"
FAST = BackoffPolicy(base_s=0.001, cap_s=0.005)
SLOW = BackoffPolicy(base_s=30.0, cap_s=30.0)  # a timer would take 15..30 s: only a test's action ends it


@dataclass
class Harness:
    store: Store
    transport: FakeTransport
    gate: pykka.ActorRef[Any]
    link: pykka.ActorRef[Any]
    fatal: list[str]

    def describe(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.link.ask(Describe(), timeout=5.0))

    def acks(self) -> list[int]:
        return [m.seq for m in received(self.gate, Acked)]

    def connect(self, wait_for: WaitFor, messages: list[str]) -> None:
        """Store the first messages and wait until the handshake and their batch are acked."""
        self.store.append(messages)
        wait_for(lambda: self.acks() == [0, len(messages)])
        # A handshake at our last seq, refused as a gap; one at its last seq (0); then the batch.
        assert self.transport.batches() == [[], [], list(range(1, len(messages) + 1))]


@pytest.fixture
def start_link() -> Callable[..., Harness]:
    def start(backoff: BackoffPolicy = FAST, store: Store | None = None, **config: Any) -> Harness:
        store = store if store is not None else MemoryStore("log-1")
        transport = FakeTransport()
        gate = Recorder.start()
        wake = WakeSignal()
        fatal: list[str] = []
        link = SecondaryLink.start("m", URL, store, transport, gate, LinkConfig(backoff=backoff, **config),
                                   random.Random(0), wake, fatal.append)
        store.set_listener(StoredSeqFanout(gate, [wake]))
        return Harness(store, transport, gate, link, fatal)

    return start


def test_first_contact_is_an_empty_handshake_then_one_batch(start_link: Callable[..., Harness],
                                                            wait_for: WaitFor) -> None:
    h = start_link()
    h.store.append(["a", "b", "c"])
    wait_for(lambda: h.acks() == [0, 3])
    h.store.append(["d", "e"])
    wait_for(lambda: h.acks() == [0, 3, 5])
    assert h.transport.batches() == [[], [], [1, 2, 3], [4, 5]]
    assert [b["prev_seq"] for b in h.transport.bodies] == [3, 0, 0, 3], "our last seq, then its last"
    assert h.transport.messages() == ["a", "b", "c", "d", "e"]
    assert all(b["log_id"] == "log-1" for b in h.transport.bodies)
    assert h.describe() == {"acked_seq": 5, "reported_seq": 5, "counted": True, "conflict": None,
                            "behind": None, "replication": "idle", "attempt": 0, "last_error": None,
                            "resent_entries": 0, "log_id": "log-1"}


def test_handshake_with_a_secondary_that_holds_a_prefix_sends_only_the_rest(
        start_link: Callable[..., Harness], wait_for: WaitFor) -> None:
    h = start_link()
    h.store.append(["a", "b", "c"])
    h.transport.store.apply("log-1", h.store.read(1, 2))  # it held 1..2 from an earlier run
    wait_for(lambda: h.acks() == [0, 2, 3])
    assert h.transport.batches() == [[], [], [3]]


def test_batches_are_capped_in_count(start_link: Callable[..., Harness], wait_for: WaitFor) -> None:
    h = start_link(batch_max_entries=2)
    h.store.append(["a", "b", "c", "d", "e"])
    wait_for(lambda: h.transport.store.stored_seq == 5)
    assert h.transport.batches() == [[], [], [1, 2], [3, 4], [5]]


def test_one_batch_in_flight_at_a_time(start_link: Callable[..., Harness], wait_for: WaitFor) -> None:
    h = start_link()
    h.connect(wait_for, ["a"])
    h.transport.hold()
    h.store.append(["b"])
    wait_for(lambda: h.transport.in_flight == 1)
    for message in ["c", "d", "e"]:
        h.store.append([message])
        h.link.tell(Wake())
    assert h.describe()["replication"] == "sending"  # every wake above is handled by now
    assert h.transport.batches()[3:] == [[2]]
    h.transport.release()
    wait_for(lambda: h.acks()[-1:] == [5])
    assert h.transport.batches()[3:] == [[2], [3, 4, 5]]
    assert h.transport.max_in_flight == 1


def test_retries_the_same_batch_after_answered_failures_with_backoff(
        start_link: Callable[..., Harness], wait_for: WaitFor) -> None:
    backoff = BackoffPolicy(base_s=0.04, cap_s=0.04)
    h = start_link(backoff=backoff)
    h.link.tell(NodeStatus(Status.HEALTHY))
    h.connect(wait_for, ["a"])
    h.transport.fail(2, answered=True)  # e.g. HTTP 500 after applying
    h.store.append(["b", "c"])
    wait_for(lambda: h.acks()[-1:] == [3])
    assert h.transport.batches()[3:] == [[2, 3]] * 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(h.transport.call_times[3:])]
    assert all(gap >= backoff.base_s / 2 for gap in gaps), gaps  # never an immediate retry
    assert h.describe()["attempt"] == 0
    assert h.describe()["resent_entries"] == 4


def test_unanswered_failure_handshakes_again_before_resending(start_link: Callable[..., Harness],
                                                              wait_for: WaitFor) -> None:
    h = start_link()
    h.connect(wait_for, ["a"])
    h.transport.fail(1, answered=False, detail="ConnectionRefusedError")  # it may have restarted
    h.store.append(["b"])
    wait_for(lambda: h.acks()[-1:] == [2] and len(h.transport.bodies) == 6)
    assert h.transport.batches()[3:] == [[2], [], [2]]


def test_failure_state_is_described(start_link: Callable[..., Harness], wait_for: WaitFor) -> None:
    h = start_link(backoff=SLOW)
    h.transport.fail(1, detail="HTTP 500: injected")
    h.store.append(["a"])
    wait_for(lambda: h.describe()["replication"] == "backing_off")
    state = h.describe()
    assert state["attempt"] == 1
    assert state["last_error"] == "HTTP 500: injected"
    assert state["acked_seq"] == 0


def test_healthy_again_retries_at_once(start_link: Callable[..., Harness], wait_for: WaitFor) -> None:
    h = start_link(backoff=SLOW)
    h.connect(wait_for, ["a"])
    h.transport.fail(1)
    h.store.append(["b"])
    wait_for(lambda: h.describe()["replication"] == "backing_off")
    h.link.tell(NodeStatus(Status.SUSPECTED))  # not a reason to retry
    assert h.describe()["replication"] == "backing_off"
    assert len(h.transport.bodies) == 4
    h.link.tell(NodeStatus(Status.HEALTHY))
    wait_for(lambda: h.acks()[-1:] == [2], timeout_s=3.0)
    assert h.transport.batches()[3:] == [[2], [2]]


def test_resends_from_a_lower_acked_seq_when_the_secondary_lost_its_log(
        start_link: Callable[..., Harness], wait_for: WaitFor) -> None:
    h = start_link()
    h.connect(wait_for, ["a", "b", "c"])
    h.transport.lose_log()
    h.store.append(["d"])
    wait_for(lambda: h.acks() == [0, 3, 0, 4])  # it refused seq 4 as a gap, then got 1..4
    assert h.transport.batches()[3:] == [[4], [], [1, 2, 3, 4]]
    assert h.transport.messages() == ["a", "b", "c", "d"]
    assert h.describe()["resent_entries"] == 4


def test_restarted_secondary_gets_the_whole_log_after_a_handshake(start_link: Callable[..., Harness],
                                                                  wait_for: WaitFor) -> None:
    h = start_link()
    h.connect(wait_for, ["a", "b"])
    h.transport.lose_log()
    h.transport.fail(1, answered=False, detail="ConnectionRefusedError")
    h.store.append(["c"])
    wait_for(lambda: h.acks()[-1:] == [3])
    assert h.transport.batches()[3:] == [[3], [], [], [1, 2, 3]]  # at its last seq 2: a gap; at 0
    assert h.transport.messages() == ["a", "b", "c"]


def test_probe_showing_a_lost_log_triggers_a_resend(start_link: Callable[..., Harness],
                                                    wait_for: WaitFor) -> None:
    h = start_link()
    h.connect(wait_for, ["a", "b"])
    h.transport.lose_log()
    h.link.tell(Probed(0, event_stamp()))
    wait_for(lambda: h.acks() == [0, 2, 0, 2])
    assert h.transport.batches()[3:] == [[], [1, 2]]  # verified at 0 first
    assert h.transport.messages() == ["a", "b"]


def test_probe_asked_before_the_last_answer_does_not_undo_it(start_link: Callable[..., Harness],
                                                            wait_for: WaitFor) -> None:
    h = start_link()
    asked_at = event_stamp()  # a probe leaves; the node reads its seq (0) before the batch lands
    h.connect(wait_for, ["a", "b"])
    h.link.tell(Probed(0, asked_at))
    assert h.describe()["acked_seq"] == 2
    assert h.acks() == [0, 2] and h.describe()["resent_entries"] == 0
    h.store.append(["c"])
    wait_for(lambda: h.acks()[-1:] == [3])
    assert h.transport.batches()[3:] == [[3]]


def test_probe_asked_before_an_unanswered_send_does_not_skip_the_handshake(
        start_link: Callable[..., Harness], wait_for: WaitFor) -> None:
    h = start_link(backoff=SLOW)
    h.connect(wait_for, ["a"])
    asked_at = event_stamp()  # a probe reads acked 1; then the node may store 2 and die unanswered
    h.transport.fail(1, answered=False, detail="ConnectionResetError")
    h.store.append(["b"])
    wait_for(lambda: h.describe()["attempt"] == 1)
    h.link.tell(Probed(1, asked_at))  # old news: the link must still ask where the node is
    h.link.tell(NodeStatus(Status.HEALTHY))  # ends the 30 s backoff at once
    wait_for(lambda: h.acks()[-1:] == [2])
    assert h.transport.batches()[3:] == [[2], [], [2]]


def test_probe_during_a_send_is_ignored(start_link: Callable[..., Harness], wait_for: WaitFor) -> None:
    h = start_link()
    h.connect(wait_for, ["a"])
    h.transport.hold()
    h.store.append(["b"])
    wait_for(lambda: h.transport.in_flight == 1)
    h.link.tell(Probed(0, event_stamp()))
    assert h.describe()["replication"] == "sending"
    h.transport.release()
    wait_for(lambda: h.acks()[-1:] == [2])
    assert h.transport.batches()[3:] == [[2]]
    assert h.acks() == [0, 1, 2]


def test_refused_batch_backs_off_the_full_cap(start_link: Callable[..., Harness], wait_for: WaitFor) -> None:
    backoff = BackoffPolicy(base_s=0.001, cap_s=0.2)
    h = start_link(backoff=backoff)
    h.link.tell(NodeStatus(Status.HEALTHY))
    h.connect(wait_for, ["a"])
    h.transport.fail(1, refused=True, detail="HTTP 409: log_conflict")
    h.store.append(["b"])
    wait_for(lambda: h.acks()[-1:] == [2])
    assert h.transport.batches()[3:] == [[2], [2]]
    first, second = h.transport.call_times[3:]
    assert second - first >= backoff.cap_s / 2  # a 4xx is not retried at the base delay
    assert h.describe()["last_error"] is None


def test_with_nothing_stored_one_handshake_verifies_the_secondary(
        start_link: Callable[..., Harness], wait_for: WaitFor) -> None:
    h = start_link()
    h.link.tell(Wake())
    wait_for(lambda: h.describe()["counted"])
    h.link.tell(NodeStatus(Status.HEALTHY))
    assert h.describe()["replication"] == "idle"
    assert h.transport.batches() == [[]]


def test_stop_closes_the_transport(start_link: Callable[..., Harness]) -> None:
    h = start_link()
    h.link.stop(timeout=5.0)
    assert h.transport.closed


class _CountingRef:
    def __init__(self) -> None:
        self.told: list[object] = []

    def tell(self, message: object) -> None:
        self.told.append(message)


def test_wake_signal_sends_one_wake_at_a_time_and_none_unless_the_link_is_idle() -> None:
    ref = _CountingRef()
    state = LinkState(FAST, random.Random(0))
    wake = WakeSignal()
    wake()  # not bound yet: nothing to wake
    wake.bind(cast(pykka.ActorRef[Any], ref), state)
    wake()
    wake()
    assert len(ref.told) == 1  # coalesced until the link takes it
    wake.taken()
    assert isinstance(state.decide(1), Send)  # the state's own phase is the only in-flight flag
    wake()
    assert len(ref.told) == 1  # the answer to the batch in flight makes the link look again
    state.dispatched(1)
    state.failed("refused", answered=False)
    wake()
    assert len(ref.told) == 1  # nor while a retry is pending: the retry looks again
    state.decide(1)
    state.node_status(Status.HEALTHY)
    wake()
    assert len(ref.told) == 2 and all(isinstance(m, Wake) for m in ref.told)


def test_the_fanout_counts_the_master_and_wakes_every_link() -> None:
    gate, refs = _CountingRef(), [_CountingRef(), _CountingRef()]
    signals = [WakeSignal() for _ in refs]
    for ref, signal in zip(refs, signals, strict=True):
        signal.bind(cast(pykka.ActorRef[Any], ref), LinkState(FAST, random.Random(0)))
    StoredSeqFanout(cast(pykka.ActorRef[Any], gate), signals)(7)
    assert gate.told == [MasterStored(7)]
    assert all(len(ref.told) == 1 and isinstance(ref.told[0], Wake) for ref in refs)


def test_entries_stored_while_a_batch_is_in_flight_go_out_when_it_is_answered(
        start_link: Callable[..., Harness], wait_for: WaitFor) -> None:
    h = start_link()
    h.connect(wait_for, ["a"])
    h.transport.hold()
    h.store.append(["b"])
    wait_for(lambda: h.transport.in_flight == 1)
    h.store.append(["c"])  # its wake-up is skipped: no Wake is told by hand here
    h.store.append(["d"])
    h.transport.release()
    wait_for(lambda: h.acks()[-1:] == [4])
    h.store.append(["e"])  # the link is idle again, so this one wakes it
    wait_for(lambda: h.acks()[-1:] == [5])
    assert h.transport.batches()[3:] == [[2], [3, 4], [5]]


def test_the_last_failure_stays_visible_while_the_link_keeps_failing(start_link: Callable[..., Harness],
                                                                     wait_for: WaitFor) -> None:
    h = start_link(backoff=SLOW)
    h.connect(wait_for, ["a"])
    h.transport.fail(1, detail="HTTP 500: first")
    h.store.append(["b"])
    wait_for(lambda: h.describe()["replication"] == "backing_off")
    h.transport.fail(1, answered=False, detail="ConnectionRefusedError: second")
    h.transport.hold()
    h.link.tell(NodeStatus(Status.HEALTHY))  # retry now; the retry hangs until released
    wait_for(lambda: h.transport.in_flight == 1)
    state = h.describe()
    assert (state["replication"], state["attempt"], state["last_error"]) == ("sending", 1, "HTTP 500: first")
    h.transport.release()
    wait_for(lambda: h.describe()["attempt"] == 2)
    state = h.describe()
    assert (state["replication"], state["last_error"]) == ("backing_off", "ConnectionRefusedError: second")


class FlakyStore(MemoryStore):
    """A master store whose reads raise `error` until `heal()`."""

    def __init__(self, error: Exception) -> None:
        super().__init__("log-1")
        self.error: Exception | None = error
        self.reads = 0

    def heal(self) -> None:
        self.error = None

    def read(self, from_seq: int, max_count: int, max_bytes: int = 1 << 62) -> list[Entry]:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return super().read(from_seq, max_count, max_bytes)


def test_a_failure_to_read_the_store_is_reported_and_retried(start_link: Callable[..., Harness],
                                                             wait_for: WaitFor) -> None:
    store = FlakyStore(RuntimeError("disk hiccup"))
    h = start_link(backoff=SLOW, store=store)
    h.link.tell(Probed(0, event_stamp()))  # acked seq known: the next batch is read from the store
    assert h.describe()["acked_seq"] == 0  # handled before anything is stored
    h.store.append(["a"])
    wait_for(lambda: h.describe()["replication"] == "backing_off")
    state = h.describe()
    assert state["attempt"] == 1 and "disk hiccup" in state["last_error"]
    assert h.transport.batches() == [[]] and h.fatal == []  # a handshake at 0 reads nothing
    store.heal()
    h.link.tell(NodeStatus(Status.HEALTHY))  # ends the 30 s backoff at once
    wait_for(lambda: h.acks()[-1:] == [1])
    assert h.describe()["last_error"] is None


@pytest.mark.parametrize("error", [CorruptLog("checksum mismatch", path="entries.dat", offset=7),
                                   StorageError("pread failed: EIO")])
def test_a_fatal_store_failure_is_escalated_and_stops_the_link(start_link: Callable[..., Harness],
                                                               wait_for: WaitFor, error: Exception) -> None:
    store = FlakyStore(error)
    h = start_link(store=store)
    h.link.tell(Probed(0, event_stamp()))  # acked seq known: the next batch is read from the store
    h.link.tell(NodeStatus(Status.HEALTHY))
    assert h.describe()["acked_seq"] == 0  # both handled before anything is stored
    h.store.append(["a"])
    wait_for(lambda: h.fatal)
    assert len(h.fatal) == 1 and str(error) in h.fatal[0] and URL in h.fatal[0]
    state = h.describe()
    assert (state["replication"], state["last_error"]) == ("broken", h.fatal[0])
    h.store.append(["b"])
    h.link.tell(Wake())
    h.link.tell(NodeStatus(Status.HEALTHY))
    assert h.describe()["replication"] == "broken"
    assert store.reads == 1 and h.transport.batches() == [[]] and len(h.fatal) == 1


# --- log matching (issue 11 C7) ---------------------------------------------------------------
def counted(h: Harness) -> list[bool]:
    return [m.counted for m in received(h.gate, LinkVerdict)]


def test_a_refused_batch_leads_to_a_search_and_a_resend_from_the_match_point(
    start_link: Callable[..., Harness], wait_for: WaitFor
) -> None:
    h = start_link()
    h.store.append(["a", "b", "c", "d", "e", "f"])
    h.transport.store.apply("log-1", h.store.read(1, 4))  # it held 1..4 from an earlier run
    wait_for(lambda: h.transport.store.stored_seq == 6)
    # Our last seq (refused: a gap); its last seq; then the rest.
    assert [b["prev_seq"] for b in h.transport.bodies] == [6, 4, 4]
    assert h.transport.batches() == [[], [], [5, 6]]
    assert h.acks() == [0, 4, 6] and counted(h) == [True]


def test_a_conflict_is_not_counted_and_clears_when_the_node_answers_right(
    start_link: Callable[..., Harness], wait_for: WaitFor
) -> None:
    h = start_link(backoff=BackoffPolicy(base_s=0.001, cap_s=0.05))
    h.store.append(["a", "b", "c"])
    h.transport.store.apply("log-1", [Entry(1, "a"), Entry(2, "b"), Entry(3, "OTHER")])
    wait_for(lambda: h.describe()["conflict"] is not None)
    state = h.describe()
    assert "other content" in state["conflict"] and state["counted"] is False and state["acked_seq"] == 0
    assert all(a == 0 for a in h.acks()), "a conflicting secondary never counts"
    h.transport.lose_log()  # the node is replaced by an empty one: the next check finds it right
    wait_for(lambda: h.describe()["conflict"] is None and h.acks()[-1:] == [3])
    assert h.transport.messages() == ["a", "b", "c"]
    assert counted(h)[-1] is True


def test_a_probe_above_what_the_master_holds_never_counts(
    start_link: Callable[..., Harness], wait_for: WaitFor
) -> None:
    h = start_link()
    h.connect(wait_for, ["a", "b"])
    h.link.tell(Probed(1_000, event_stamp()))  # it claims more than we hold (and holds 1..2)
    h.link.tell(NodeStatus(Status.HEALTHY))
    wait_for(lambda: len(h.transport.bodies) == 4)  # the claim is checked at our last seq
    assert h.transport.bodies[-1]["prev_seq"] == 2 and h.transport.batches()[-1] == []
    wait_for(lambda: h.describe()["reported_seq"] == 2)
    assert max(h.acks()) == 2 and h.describe()["behind"] is None

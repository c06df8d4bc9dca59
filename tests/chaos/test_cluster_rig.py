"""The cluster-mode fault rig's own parts, fast: the schedule and how refused appends are classified."""

from __future__ import annotations

import itertools
import random

import pytest
import requests

from replog.chaos.cluster_faults import ClusterFaultKind, make_cluster_schedule
from replog.chaos.cluster_workload import classify_error, never_sent
from replog.chaos.history import OpType
from replog.client import ConnectionFailed, ReplogClient, ReplogHTTPError
from replog.testing.process import free_port

ELECTION_MAX_S, LEASE_S = 3.0, 1.5


@pytest.mark.parametrize("seed", range(20))
def test_a_minute_sees_every_kind_and_master_faults_outlast_the_election_timeout(seed: int) -> None:
    schedule = make_cluster_schedule(random.Random(seed), 60.0, ELECTION_MAX_S, LEASE_S, cut=True)
    kinds = [f.kind for f in schedule]
    assert set(kinds) >= {
        ClusterFaultKind.MASTER_KILL,
        ClusterFaultKind.MASTER_PAUSE,
        ClusterFaultKind.MASTER_CUT,
    }
    assert sum(k.on_master for k in kinds) >= 3  # repeated failovers
    for fault in schedule:
        if fault.kind in (ClusterFaultKind.MASTER_PAUSE, ClusterFaultKind.MASTER_CUT):
            assert fault.duration_s > ELECTION_MAX_S  # a zombie master, a deposed cut-off master
        if fault.kind is ClusterFaultKind.QUORUM_LOSS:
            assert fault.duration_s > LEASE_S
    ends = [f.at_s + f.duration_s for f in schedule]
    assert all(end <= 58.0 for end in ends)
    assert all(a.at_s + a.duration_s < b.at_s for a, b in itertools.pairwise(schedule))


def test_without_namespaces_the_cut_faults_are_left_out() -> None:
    schedule = make_cluster_schedule(random.Random(1), 300.0, ELECTION_MAX_S, LEASE_S, cut=False)
    assert schedule and not any(f.kind.needs_cut for f in schedule)


@pytest.mark.parametrize(
    ("status", "body", "outcome", "seq"),
    [
        (421, {"error": "not_master", "master": None, "epoch": 3}, OpType.FAIL, None),
        (503, {"error": "read_only"}, OpType.FAIL, None),
        (503, {"error": "overloaded"}, OpType.FAIL, None),
        (400, {"error": "bad_request"}, OpType.FAIL, None),
        (503, {"error": "master_changed", "seq": 17}, OpType.TIMEOUT, 17),
        (504, {"error": "write_concern_timeout", "seq": 9, "acks": 1}, OpType.TIMEOUT, 9),
        (503, {"error": "storage_unavailable"}, OpType.TIMEOUT, None),
        (500, {"error": "internal"}, OpType.TIMEOUT, None),
    ],
)
def test_a_refusal_is_a_failure_only_when_nothing_was_stored(
    status: int, body: dict[str, object], outcome: OpType, seq: int | None
) -> None:
    assert classify_error(ReplogHTTPError(status, body, {})) == (outcome, seq)


def test_a_refused_connection_was_never_sent_but_a_read_timeout_may_have_landed() -> None:
    with requests.Session() as session:
        session.trust_env = False
        with pytest.raises(requests.RequestException) as refused:
            session.post(f"http://127.0.0.1:{free_port()}/messages", json={}, timeout=2)
    assert never_sent(refused.value)
    assert never_sent(requests.ConnectTimeout())
    assert not never_sent(requests.ReadTimeout())
    assert not never_sent(requests.ConnectionError("Connection reset by peer"))


def test_the_clients_wrapped_connection_errors_are_judged_and_never_kill_a_writer() -> None:
    """Regression: `replog.client` wraps requests errors in `ConnectionFailed`, which the writers
    did not catch: every writer thread died at the first master kill, and the run went on without
    writes (seen in a 600 s cluster-mode run)."""
    with pytest.raises(ConnectionFailed) as refused:
        ReplogClient(f"http://127.0.0.1:{free_port()}", request_timeout_s=2).append("x", 1)
    assert never_sent(refused.value)
    try:
        raise ConnectionFailed("read timed out") from requests.ReadTimeout()
    except ConnectionFailed as exc:
        assert not never_sent(exc)

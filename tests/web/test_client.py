"""replog.client.Client against in-process nodes: typed results, retries that store once (504,
503 after Retry-After), what is not retried, the deadline, and follow/tail/status."""

from __future__ import annotations

import random
import threading

import pytest

from replog.client import (
    Appended,
    Client,
    ConnectionFailed,
    Entry,
    GaveUp,
    KeyReused,
    NotAcknowledged,
    Rejected,
    Unavailable,
)
from replog.core.backoff import BackoffPolicy
from tests.conftest import WaitFor
from tests.web.conftest import Cluster


def client(cluster: Cluster, sleep: object = None, **kwargs: object) -> Client:
    return Client(cluster.url, sleep=sleep or (lambda s: None), rng=random.Random(1),  # type: ignore[arg-type]
                  backoff=BackoffPolicy(0.01, 0.05), **kwargs)  # type: ignore[arg-type]


def test_append_returns_typed_results_with_a_fresh_key_each(cluster: Cluster) -> None:
    with client(cluster) as log:
        one = log.append("m1", w=3)
        two = log.append("m2", w="majority")
        bulk = log.append_many(["a", "b"], w=2)
    assert isinstance(one, Appended) and (one.seq, one.acks, one.duplicate, one.attempts) == (1, 3, False, 1)
    assert two.seq == 2 and one.key != two.key and len(one.key) == 32
    assert bulk.seqs == (3, 4) and len(set(bulk.keys)) == 2 and bulk.duplicates == 0
    assert cluster.messages() == ["m1", "m2", "a", "b"]


def test_a_504_is_retried_with_the_same_key_and_stores_once(cluster: Cluster) -> None:
    cluster.stop_secondary(1)
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the secondary comes back while the client backs off
        slept.append(seconds)
        if cluster.secondaries[1] is None:
            cluster.restart_secondary(1)

    with client(cluster, sleep) as log:
        result = log.append("m", w=3, timeout_s=0.2)
    assert result.seq == 1 and result.duplicate is True and result.attempts >= 2
    assert cluster.messages() == ["m"]
    assert slept


def test_a_503_waits_its_retry_after(cluster: Cluster, wait_for: WaitFor) -> None:
    cluster.stop_secondary(0)
    cluster.stop_secondary(1)
    cluster.wait_health(lambda h: h["read_only"])
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        for index in (0, 1):
            if cluster.secondaries[index] is None:
                cluster.restart_secondary(index)
        cluster.wait_health(lambda h: not h["read_only"])

    with client(cluster, sleep) as log:
        result = log.append("m", w=1)
    assert result.seq == 1 and slept[0] >= 1.0  # Retry-After: 1 wins over the 10-50 ms backoff
    assert cluster.messages() == ["m"]


def test_what_cannot_succeed_is_not_retried(cluster: Cluster) -> None:
    slept: list[float] = []
    with client(cluster, slept.append) as log:
        log.append("m", key="k")
        with pytest.raises(KeyReused) as reused:
            log.append("other", key="k")
        assert reused.value.seq == 1 and not reused.value.retryable
        with pytest.raises(Rejected):
            log.append("m", w=9)
    assert slept == []
    assert Unavailable.retryable and NotAcknowledged.retryable and ConnectionFailed.retryable


def test_the_deadline_ends_the_retries() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    log = Client("http://127.0.0.1:9", deadline_s=2.0, request_timeout_s=0.2, sleep=sleep,
                 clock=lambda: now[0], backoff=BackoffPolicy(0.1, 0.5))
    with pytest.raises(GaveUp) as gave_up:
        log.append("m")
    assert isinstance(gave_up.value.last, ConnectionFailed)
    assert now[0] <= 2.0


def test_follow_yields_each_entry_once_in_order_and_tail_the_last(cluster: Cluster) -> None:
    with client(cluster) as log:
        log.append_many([f"m{i}" for i in range(1, 6)], w=3)
        seen: list[Entry] = []
        done = threading.Event()

        def run() -> None:
            for entry in log.follow(from_seq=2, wait_s=0.2, page=2, stop=done.is_set):
                seen.append(entry)
                if entry.seq == 7:
                    done.set()

        thread = threading.Thread(target=run)
        thread.start()
        log.append_many(["m6", "m7"], w=1)
        thread.join(10)
        assert [e.seq for e in seen] == [2, 3, 4, 5, 6, 7]
        assert [e.message for e in log.tail(2)] == ["m6", "m7"]
        assert [e.message for e in log.tail(3, node=cluster.urls[0])][-1] in {"m5", "m7"}


def test_status_lists_every_node(cluster: Cluster) -> None:
    with client(cluster) as log:
        log.append("m", w=3)
        rows = log.status()
    assert [r.role for r in rows] == ["master", "secondary", "secondary"]
    assert rows[0].acked_seq == 1 and {r.status for r in rows[1:]} == {"Healthy"}
    assert [r.node for r in rows[1:]] == cluster.urls

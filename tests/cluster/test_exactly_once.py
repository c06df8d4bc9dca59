"""Exactly once from the client's side, with real node processes: `replog.client.Client` retries
after a 504, after a connection killed mid-append, and across a master restart (kill -9), and each
message is stored once; a follower resumes across a node restart with no gap and no repeat."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from replog.client import Client, Entry, KeyReused
from replog.core.backoff import BackoffPolicy
from replog.testing.cluster import LocalCluster
from replog.testing.proxy import LinkProxy
from tests.cluster.conftest import FAST as CLUSTER_FAST
from tests.conftest import wait_for

pytestmark = pytest.mark.slow
FAST = ("--heartbeat-interval=0.1", "--suspect-after=0.5", "--unhealthy-after=1.0")


@pytest.fixture(name="cluster")
def cluster_fixture(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path, master_argv=FAST)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.stop()


def backing_off(url: str, on_sleep: object, **kwargs: object) -> Client:
    """A client whose back-off runs `on_sleep` (the test's fault healing) instead of sleeping."""
    return Client(url, backoff=BackoffPolicy(0.01, 0.05), sleep=on_sleep, deadline_s=60.0,  # type: ignore[arg-type]
                  **kwargs)  # type: ignore[arg-type]


def test_a_retry_after_a_504_stores_once(cluster: LocalCluster) -> None:
    cluster.pause("s2")
    sleeps: list[float] = []

    def heal(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:
            cluster.resume("s2")

    with backing_off(cluster.master.url, heal) as client:
        result = client.append("once", w=3, timeout_s=0.5)
    assert result.attempts >= 2 and result.duplicate is True and result.seq == 1
    assert cluster.wait_converged() == ["once"]


def test_a_connection_killed_mid_append_stores_once(cluster: LocalCluster) -> None:
    proxy = LinkProxy(target_port=cluster.master.spec.port, name="client-master")
    proxy.start()
    try:
        cluster.pause("s2")  # so the append waits for w=3 while its connection is cut
        cut = threading.Event()

        def cut_when_waiting() -> None:
            wait_for(lambda: cluster.client.health()["waiting_writers"] == 1, 30)
            proxy.cut()
            cut.set()

        cutter = threading.Thread(target=cut_when_waiting, daemon=True)
        cutter.start()

        def heal(_seconds: float) -> None:
            assert cut.wait(30)
            proxy.heal()
            cluster.resume("s2")

        with backing_off(f"http://127.0.0.1:{proxy.port}", heal, request_timeout_s=1.0) as client:
            result = client.append("cut", w=3, timeout_s=1.0)
        cutter.join(30)
        assert result.attempts >= 2 and result.duplicate is True
        assert cluster.wait_converged() == ["cut"]
    finally:
        proxy.close()


def test_a_key_still_dedups_after_the_master_is_killed_and_restarted(cluster: LocalCluster) -> None:
    with Client(cluster.master.url) as client:
        first = client.append("before", w=3, key="durable-key")
        cluster.kill("master")
        cluster.start("master")
        cluster.wait_writable(30)
        again = client.append("before", w=3, key="durable-key")
        assert (again.seq, again.duplicate) == (first.seq, True)
        with pytest.raises(KeyReused):
            client.append("another", key="durable-key")
    assert cluster.wait_converged() == ["before"]


def test_a_follower_resumes_across_a_node_restart_without_gaps_or_repeats(cluster: LocalCluster) -> None:
    seen: list[Entry] = []
    stop = threading.Event()
    with Client(cluster.master.url, backoff=BackoffPolicy(0.05, 0.2)) as client:
        def collect() -> None:
            for entry in client.follow(1, node=cluster.secondaries["s1"].url, wait_s=1.0, stop=stop.is_set):
                seen.append(entry)

        follower = threading.Thread(target=collect, daemon=True)
        follower.start()
        client.append_many([f"a{i}" for i in range(50)], w=3)
        wait_for(lambda: len(seen) == 50, 30)
        cluster.kill("s1")
        client.append_many([f"b{i}" for i in range(50)], w=2)  # while the followed node is down
        cluster.start("s1")
        client.append_many([f"c{i}" for i in range(50)], w=3)
        wait_for(lambda: len(seen) >= 150, 60)
        stop.set()
        follower.join(30)
    assert [e.seq for e in seen] == list(range(1, 151))
    assert [e.message for e in seen][49:51] == ["a49", "b0"]


def test_a_key_still_dedups_after_a_change_of_master(tmp_path: Path) -> None:
    """Cluster mode: the key travels with its entry, so the new master knows it (#9 with #13)."""
    cluster = LocalCluster(tmp_path, secondaries=("s1", "s2"), common_argv=CLUSTER_FAST,
                           log_dir=tmp_path / "logs", cluster_mode=True)
    cluster.start()
    try:
        first = cluster.current_master()
        with Client(cluster.nodes[first].url) as client:
            stored = client.append("paid", w="all", key="order-17")
        cluster.kill(first)
        second = cluster.current_master(30)
        assert second != first
        other = next(n for n in cluster.nodes if n not in (first, second))
        # through a secondary: its 421 is followed to the new master, which holds the key
        with Client(cluster.nodes[other].url, backoff=BackoffPolicy(0.05, 0.5)) as client:
            again = client.append("paid", w="majority", key="order-17")
            assert (again.seq, again.duplicate) == (stored.seq, True)
            with pytest.raises(KeyReused):
                client.append("changed", key="order-17")
    finally:
        cluster.stop()

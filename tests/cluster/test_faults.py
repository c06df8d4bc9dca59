"""Exactly once, total order, catch-up and quorum with real processes and the nodes' own faults."""

from __future__ import annotations

import concurrent.futures
import itertools
import shutil

import pytest

from replog.client import ReplogClient, ReplogHTTPError, poll_until

# Multi-process: `-m "not slow"` leaves it out of a quick run.
pytestmark = pytest.mark.slow


def test_concurrent_mixed_w_under_errors_and_delays_is_exactly_once_in_order(make_cluster) -> None:
    cluster = make_cluster({"s1": ("--error-rate=0.3", "--delay=0.005"), "s2": ("--error-rate=0.3",)}).up()
    values = [f"m{i}" for i in range(200)]
    ws = itertools.cycle([1, 2, 3, "majority", "all"])
    clients = [ReplogClient(cluster.master.url) for _ in range(16)]

    def send(i: int, w: object) -> dict:
        return clients[i % len(clients)].append(values[i], w)  # type: ignore[arg-type]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, range(len(values)), ws))

    seqs = sorted(a["seq"] for a in answers)
    assert seqs == list(range(1, 201)), "every append got its own seq, no gaps"
    final = cluster.wait_converged()
    assert sorted(final) == sorted(values) and len(set(final)) == 200
    by_seq = {a["seq"]: a["message"] for a in answers}
    assert final == [by_seq[s] for s in range(1, 201)], "every node shows the master's order"
    assert "injected 500 after applying" in cluster.log_text("s1"), "the fault really fired"


def test_secondary_restarted_with_empty_log_catches_up(make_cluster) -> None:
    cluster = make_cluster().up()
    for i in range(50):
        cluster.client.append(f"a{i}", 3)
    s1 = cluster.secondaries["s1"]
    s1.kill()
    shutil.rmtree(s1.spec.data_dir)
    for i in range(50, 80):
        cluster.client.append(f"a{i}", 2)
    s1.start()
    final = cluster.wait_converged()
    assert final == [f"a{i}" for i in range(80)]
    assert cluster.messages("s1") == final


def test_paused_secondary_goes_suspected_then_unhealthy_and_recovers(make_cluster) -> None:
    cluster = make_cluster().up()
    poll_until(lambda: cluster.secondary_status("s2") == "Healthy", 5, what="s2 Healthy")
    s2 = cluster.secondaries["s2"]
    s2.pause()
    try:
        seen = set()

        def unhealthy() -> bool:
            seen.add(cluster.secondary_status("s2"))
            return "Unhealthy" in seen

        poll_until(unhealthy, 10, 0.01, "s2 Unhealthy")
        assert "Suspected" in seen, f"went through Suspected first, saw {seen}"
        for i in range(20):
            assert cluster.client.append(f"p{i}", 2)["acks"] >= 2, "w=2 needs only s1"
    finally:
        s2.resume()
    poll_until(lambda: cluster.secondary_status("s2") == "Healthy", 10, what="s2 Healthy again")
    assert cluster.wait_converged() == [f"p{i}" for i in range(20)]


def test_quorum_loss_makes_master_read_only_and_it_recovers(make_cluster) -> None:
    cluster = make_cluster().up()
    cluster.client.append("before", 3)
    for node in cluster.secondaries.values():
        node.kill()
    poll_until(lambda: cluster.client.health()["read_only"], 10, what="read-only")

    with pytest.raises(ReplogHTTPError) as refused:
        cluster.client.append("refused", 1)
    assert refused.value.status == 503 and refused.value.code == "read_only"
    assert int(refused.value.headers["Retry-After"]) >= 1
    assert cluster.messages("master") == ["before"], "nothing stored while read-only"

    cluster.start("s1")
    cluster.wait_writable()
    assert cluster.client.append("after", 2)["seq"] == 2
    cluster.start("s2")
    assert cluster.wait_converged() == ["before", "after"]


def test_client_timeout_gives_504_and_the_message_still_arrives(make_cluster) -> None:
    cluster = make_cluster()
    cluster.start("master", "s1")
    cluster.wait_writable()
    with pytest.raises(ReplogHTTPError) as timed_out:
        cluster.client.append("late", 3, timeout_s=0.3)
    assert timed_out.value.status == 504
    assert timed_out.value.body["seq"] == 1 and timed_out.value.body["acks"] == 2
    cluster.start("s2")
    poll_until(lambda: cluster.messages("s2") == ["late"], 10, what="late message on s2")

"""The assignment's self-check acceptance test, started the way a user would: M + S1, then S2."""

from __future__ import annotations

import concurrent.futures

import pytest

from replog.client import ReplogClient

# Multi-process: `-m "not slow"` leaves it out of a quick run.
pytestmark = pytest.mark.slow


def test_self_check_acceptance(make_cluster) -> None:
    """No clock in the assertions: "at once" is "answered while S2 has never run", and "Msg3 waits"
    is what the master itself reports (`waiting_writers`) while the request stays unanswered."""
    cluster = make_cluster()
    cluster.start("master", "s1")
    cluster.wait_writable()
    client = cluster.client

    assert client.append("Msg1", 1)["seq"] == 1
    assert client.append("Msg2", 2)["seq"] == 2  # M + S1 are enough: nothing to wait for
    assert client.health()["waiting_writers"] == 0

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        msg3 = pool.submit(ReplogClient(cluster.master.url).append, "Msg3", 3)
        cluster.wait_health(lambda h: h["last_seq"] == 3 and h["waiting_writers"] == 1)
        assert not msg3.done(), "Msg3 (w=3) must wait while S2 is down"

        assert client.append("Msg4", 1)["seq"] == 4, "Msg4 must not wait behind Msg3"
        assert client.health()["waiting_writers"] == 1, "Msg3 was still waiting when Msg4 answered"
        assert not msg3.done()

        cluster.start("s2")
        answer = msg3.result(timeout=15)
    assert answer["seq"] == 3 and answer["acks"] == 3, "answered only once S2 held it"

    assert cluster.wait_converged() == ["Msg1", "Msg2", "Msg3", "Msg4"]
    assert cluster.messages("s2") == ["Msg1", "Msg2", "Msg3", "Msg4"]

"""The assignment's self-check acceptance test, started the way a user would: M + S1, then S2."""

from __future__ import annotations

import concurrent.futures
import time

from replog.client import ReplogClient


def test_self_check_acceptance(make_cluster) -> None:
    cluster = make_cluster()
    cluster.start("master", "s1")
    cluster.wait_writable()
    client = cluster.client

    started = time.monotonic()
    assert client.append("Msg1", 1)["seq"] == 1
    assert client.append("Msg2", 2)["seq"] == 2
    assert time.monotonic() - started < 1.0, "Msg1 and Msg2 must answer at once"

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        msg3 = pool.submit(ReplogClient(cluster.master.url).append, "Msg3", 3)
        done, _ = concurrent.futures.wait([msg3], timeout=1.0)
        assert not done, "Msg3 (w=3) must wait while S2 is down"

        msg4_started = time.monotonic()
        assert client.append("Msg4", 1)["seq"] == 4
        assert time.monotonic() - msg4_started < 0.5, "Msg4 must not wait behind Msg3"
        assert not msg3.done()

        cluster.start("s2")
        answer = msg3.result(timeout=15)
    assert answer["seq"] == 3 and answer["acks"] == 3

    assert cluster.messages("s2") == ["Msg1", "Msg2", "Msg3", "Msg4"]
    assert cluster.wait_converged() == ["Msg1", "Msg2", "Msg3", "Msg4"]

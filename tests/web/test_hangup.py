"""A writer that hangs up stops waiting: its slot is freed, and its entry stays stored."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

from .conftest import HTTP_TIMEOUT_S, Cluster


def test_a_waiting_writer_that_hangs_up_frees_its_slot(wait_for) -> None:  # type: ignore[no-untyped-def]
    cluster = Cluster()
    try:
        cluster.wait_all_healthy()
        cluster.stop_secondary(1)
        parts = urlsplit(cluster.url)
        writer = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=HTTP_TIMEOUT_S)
        body = json.dumps({"message": "abandoned", "w": 3})
        writer.request("POST", "/messages", body=body, headers={"Content-Type": "application/json"})
        # hang up only once the master holds the entry and the writer waits (not on a client timeout)
        wait_for(lambda: cluster.health()["waiting_writers"] == 1, 5, "the writer waits for w=3")
        writer.close()
        wait_for(lambda: cluster.health()["waiting_writers"] == 0, 5, "the master notices the hang-up")
        assert cluster.messages() == ["abandoned"], "the entry stays stored"
        cluster.restart_secondary(1)
        wait_for(lambda: cluster.messages(1) == ["abandoned"], 5, "and still replicates")
    finally:
        cluster.close()

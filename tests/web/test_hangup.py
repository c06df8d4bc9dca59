"""A writer that hangs up stops waiting: its slot is freed, and its entry stays stored."""

from __future__ import annotations

import pytest
import requests

from .conftest import Cluster


def test_a_waiting_writer_that_hangs_up_frees_its_slot(wait_for) -> None:  # type: ignore[no-untyped-def]
    cluster = Cluster()
    try:
        cluster.wait_all_healthy()
        cluster.stop_secondary(1)
        with pytest.raises(requests.Timeout):
            requests.post(cluster.url + "/messages", json={"message": "abandoned", "w": 3}, timeout=0.5)
        wait_for(lambda: cluster.health()["waiting_writers"] == 0, 5, "the master notices the hang-up")
        assert cluster.messages() == ["abandoned"], "the entry stays stored"
        cluster.restart_secondary(1)
        wait_for(lambda: cluster.messages(1) == ["abandoned"], 5, "and still replicates")
    finally:
        cluster.close()

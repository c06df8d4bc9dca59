"""`--log-format json` on real node processes: every line of every node's output is one JSON object."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_every_line_is_a_json_object_with_time_level_node_and_event(make_cluster) -> None:
    json_logs = ("--log-format=json",)
    cluster = make_cluster({"s1": json_logs, "s2": json_logs}, master_argv=json_logs).up()
    cluster.client.append("hello", 3)
    # A w=3 ack can come before the heartbeat that turns a secondary Healthy (and logs it); wait for both.
    cluster.wait_health(lambda h: all(s["status"] == "Healthy" for s in h["secondaries"]))
    cluster.stop()

    for name in cluster.nodes:
        lines = [line for line in cluster.log_text(name).splitlines() if not line.startswith("--- start")]
        assert lines, name
        records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
        for record in records:
            assert {"time", "level", "node", "event"} <= record.keys(), record
            assert record["node"] == name, record
        events = {record["event"] for record in records}
        assert f"{'master' if name == 'master' else 'secondary'} ready" in events, events
        assert "log store opened" in events, "a line of a logger that names no node still has it"

    master = [json.loads(line) for line in cluster.log_text("master").splitlines() if line.startswith("{")]
    changed = [r for r in master if r["event"] == "secondary health changed"]
    assert {r["secondary"] for r in changed} == {cluster.link_url("s1"), cluster.link_url("s2")}
    assert all(r["level"] == "INFO" and r["to"] == "Healthy" for r in changed if r["from"] == "Unhealthy")
    ready = next(r for r in master if r["event"] == "master ready")
    assert isinstance(ready["port"], int) and ready["port"] == cluster.master.spec.port

"""GET /metrics, the live page and its data on real nodes in this process, after known workloads."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from replog.config import SecondaryConfig, ServerConfig, StorageConfig
from replog.node import SecondaryNode
from tests.conftest import wait_for
from tests.web.conftest import HTTP_TIMEOUT_S, Cluster


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of GET /metrics, parsed with prometheus_client's own text parser."""
    answer = requests.get(url + "/metrics", timeout=HTTP_TIMEOUT_S)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def live(url: str) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(url + "/ops/live", timeout=HTTP_TIMEOUT_S).json()
    return answer


def test_master_and_secondary_metrics_after_a_known_workload(cluster: Cluster) -> None:
    for i in range(20):
        assert cluster.post({"message": f"m{i}", "w": 2}).status_code == 201
    for i in range(5):
        assert cluster.post({"message": f"one{i}", "w": 1}).status_code == 201
    cluster.wait_health(lambda h: all(s["acked_seq"] == 25 for s in h["secondaries"]))

    found = scrape(cluster.url)
    assert found[("replog_appends_total", (("outcome", "ok"), ("w", "2")))] == 20
    assert found[("replog_appends_total", (("outcome", "ok"), ("w", "1")))] == 5
    assert found[("replog_append_duration_seconds_count", (("w", "2"),))] == 20
    assert found[("replog_append_duration_seconds_bucket", (("le", "+Inf"), ("w", "2")))] == 20
    assert found[("replog_log_entries", ())] == 25
    assert found[("replog_read_only", ())] == 0 and found[("replog_waiting_writers", ())] == 0
    assert found[("replog_is_master", ())] == 1 and found[("replog_epoch", ())] == 1
    for url in cluster.urls:
        s = (("secondary", url),)
        assert found[("replog_secondary_acked_seq", s)] == 25
        assert found[("replog_secondary_lag_entries", s)] == 0
        assert found[("replog_secondary_status", (("secondary", url), ("status", "Healthy")))] == 1
        assert found[("replog_secondary_status", (("secondary", url), ("status", "Unhealthy")))] == 0
        assert found[("replog_replication_batches_sent_total", s)] >= 1
        assert found[("replog_replication_retries_total", s)] == 0
        assert found[("replog_probes_total", (("outcome", "ok"), ("secondary", url)))] >= 1

    for url in cluster.urls:
        secondary = scrape(url)
        assert secondary[("replog_log_entries", ())] == 25
        assert secondary[("replog_replicate_received_entries_total", ())] == 25
        assert secondary[("replog_replicate_duplicate_entries_total", ())] == 0
        assert 1 <= secondary[("replog_replicate_batches_applied_total", ())] <= 25
        assert secondary[("replog_is_master", ())] == 0
        assert secondary[("replog_epoch", ())] == 1


def test_refused_appends_are_counted_with_their_error_code(cluster: Cluster) -> None:
    cluster.stop_secondary(0)
    cluster.stop_secondary(1)
    cluster.wait_health(lambda h: h["read_only"])
    assert cluster.post({"message": "refused", "w": 1}).status_code == 503
    found = scrape(cluster.url)
    assert found[("replog_appends_total", (("outcome", "read_only"), ("w", "1")))] == 1
    assert found[("replog_read_only", ())] == 1
    assert ("replog_append_duration_seconds_count", (("w", "1"),)) not in found
    wait_for(
        lambda: any(e["text"].startswith("quorum lost") for e in live(cluster.url)["events"]),
        5,
        "quorum lost event",
    )


def test_a_secondary_restarted_without_its_log_is_an_event_and_a_metric(cluster: Cluster) -> None:
    for i in range(5):
        assert cluster.post({"message": f"m{i}", "w": 3}).status_code == 201
    url = cluster.urls[0]
    # The drop is seen by comparing a channel's answers: let a heartbeat probe read the 5 first.
    probes = ("replog_probes_total", (("outcome", "ok"), ("secondary", url)))
    before = scrape(cluster.url).get(probes, 0)
    wait_for(lambda: scrape(cluster.url).get(probes, 0) >= before + 2, 10, "a probe after the writes")
    cluster.stop_secondary(0)
    cluster.restart_secondary(0)  # same port, empty log
    wait_for(lambda: cluster.messages(0) == [f"m{i}" for i in range(5)], 10, "s1 caught up")
    restarts = [e for e in live(cluster.url)["events"] if e["kind"] == "restart"]
    assert [e["subject"] for e in restarts] == [url]
    assert "restarted without its log" in restarts[0]["text"]
    assert scrape(cluster.url)[("replog_secondary_acked_seq_drops_total", (("secondary", url),))] == 1


def test_the_root_is_the_page_for_a_browser_and_a_json_index_for_api_clients(cluster: Cluster) -> None:
    page = requests.get(cluster.url + "/", headers={"Accept": "text/html,*/*;q=0.8"}, timeout=HTTP_TIMEOUT_S)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<script src="static/app.js">' in page.text
    index = requests.get(cluster.url + "/", timeout=HTTP_TIMEOUT_S)
    assert index.headers["Content-Type"] == "application/json"
    assert index.json()["role"] == "master" and "/metrics" in index.json()["endpoints"]
    assert requests.get(cluster.urls[0] + "/", timeout=HTTP_TIMEOUT_S).json()["role"] == "secondary"
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        answer = requests.get(f"{cluster.url}/static/{name}", timeout=HTTP_TIMEOUT_S)
        assert answer.status_code == 200 and kind in answer.headers["Content-Type"], name
    missing = requests.get(cluster.url + "/static/nothing.js", timeout=HTTP_TIMEOUT_S)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    outside = requests.get(cluster.url + "/static/..%2Fops.py", timeout=HTTP_TIMEOUT_S)
    assert outside.status_code == 404 and outside.json()["error"] == "not_found"


def test_the_live_data_has_a_timeline_events_and_the_latest_entries(cluster: Cluster) -> None:
    def appended_and_drawn() -> dict[str, Any] | None:
        assert cluster.post({"message": "tick", "w": 3}).status_code == 201
        answer = live(cluster.url)
        return answer if any(p["appends_per_s"] > 0 for p in answer["series"]) else None

    answer = wait_for(appended_and_drawn, 10, "a timeline point with appends")
    assert answer["role"] == "master" and answer["health"]["role"] == "master"
    point = next(p for p in answer["series"] if p["appends_per_s"] > 0)
    assert point["latency_ms"]["p99"] >= point["latency_ms"]["p50"] > 0
    assert answer["latest"][0]["message"] == "tick" and len(answer["latest"]) <= 5
    assert answer["events"][-1]["kind"] == "started"
    texts = [e["text"] for e in answer["events"]]
    for url in cluster.urls:  # the cluster was Healthy before the sampler's first look: still events
        assert f"{url}: Unhealthy -> Healthy" in texts, texts
    assert any(text.startswith("quorum regained") for text in texts), texts

    secondary = live(cluster.urls[0])
    assert secondary["role"] == "secondary" and secondary["master"]["address"] == "127.0.0.1"
    assert secondary["health"]["acked_seq"] >= 1


def test_no_per_append_or_per_batch_line_at_the_default_level(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for i in range(10):
        assert cluster.post({"message": f"quiet{i}", "w": 3}).status_code == 201
    noisy = [
        r.getMessage() for r in caplog.records if r.name in ("replog.service.append", "replog.web.secondary")
    ]
    assert noisy == []


def test_metrics_turned_off_answer_404_in_json(tmp_path: Path) -> None:
    config = SecondaryConfig(name="s", server=ServerConfig(port=0, threads=4), metrics=False)
    node = SecondaryNode(config).start()
    try:
        answer = requests.get(node.url + "/metrics", timeout=HTTP_TIMEOUT_S)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"
    finally:
        node.stop()


def test_a_durable_secondary_reports_its_fsyncs_and_log_size(tmp_path: Path) -> None:
    config = SecondaryConfig(
        name="s", server=ServerConfig(port=0, threads=4), storage=StorageConfig(data_dir=tmp_path / "s")
    )
    node = SecondaryNode(config).start()
    try:
        batch = {"log_id": "L", "entries": [{"seq": 1, "message": "a"}, {"seq": 2, "message": "b"}]}
        assert requests.post(node.url + "/replicate", json=batch, timeout=HTTP_TIMEOUT_S).json() == {
            "acked_seq": 2
        }
        found = scrape(node.url)
        assert found[("replog_fsync_duration_seconds_count", ())] >= 1
        assert found[("replog_log_bytes", ())] == (tmp_path / "s" / "entries.dat").stat().st_size > 0
        assert found[("replog_node_info", (("log_id", "L"), ("node", "s"), ("role", "secondary")))] == 1
    finally:
        node.stop()

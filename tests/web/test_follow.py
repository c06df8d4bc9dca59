"""Following the log over HTTP: long poll (early and at timeout), min_seq, the event stream's
format, Last-Event-ID, the followers' own cap, and secondaries showing their gap-free prefix."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from replog.web.follow import MAX_WAIT_S
from tests.conftest import WaitFor
from tests.web.conftest import HTTP_TIMEOUT_S, Cluster, server


@pytest.fixture(name="capped")
def capped_cluster() -> Iterator[Cluster]:
    c = Cluster(server=server(max_followers=3, follow_keepalive_s=0.2))
    try:
        c.wait_all_healthy()
        yield c
    finally:
        c.close()


def get(url: str, path: str, **params: Any) -> requests.Response:
    return requests.get(url + path, params=params, timeout=HTTP_TIMEOUT_S)


def append_later(cluster: Cluster, message: str, after: threading.Event) -> threading.Thread:
    def run() -> None:
        after.wait(HTTP_TIMEOUT_S)
        cluster.post({"message": message, "w": 3})

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_long_poll_answers_as_soon_as_the_entry_exists(cluster: Cluster, wait_for: WaitFor) -> None:
    cluster.post({"message": "m1", "w": 3})
    go = threading.Event()
    writer = append_later(cluster, "m2", go)
    result: list[requests.Response] = []
    poll = threading.Thread(target=lambda: result.append(get(cluster.url, "/entries", from_seq=2, wait=30)))
    poll.start()
    wait_for(lambda: cluster.master.followers.active == 1)  # it is waiting, not answered
    assert not result
    go.set()
    poll.join(HTTP_TIMEOUT_S)
    writer.join(HTTP_TIMEOUT_S)
    assert [e["message"] for e in result[0].json()["entries"]] == ["m2"]  # well before its 30 s


def test_a_long_poll_answers_empty_at_its_timeout(cluster: Cluster) -> None:
    cluster.post({"message": "m1"})
    started = time.monotonic()
    answer = get(cluster.url, "/entries", from_seq=2, wait=0.3)
    assert answer.status_code == 200
    assert answer.json() == {"entries": [], "stored_seq": 1}
    assert time.monotonic() - started >= 0.3
    held = get(cluster.url, "/entries", from_seq=1, wait=30)  # already held: at once
    assert [e["message"] for e in held.json()["entries"]] == ["m1"]


def test_a_secondary_long_poll_sees_the_entry_once_it_holds_it(cluster: Cluster) -> None:
    go = threading.Event()
    writer = append_later(cluster, "m1", go)
    go.set()
    answer = get(cluster.urls[0], "/entries", from_seq=1, wait=30)
    writer.join(HTTP_TIMEOUT_S)
    assert [e["message"] for e in answer.json()["entries"]] == ["m1"]


@pytest.mark.parametrize("wait", ["-1", "abc", str(MAX_WAIT_S + 1), "nan", "inf"])
def test_a_bad_wait_is_400(cluster: Cluster, wait: str) -> None:
    answer = get(cluster.url, "/entries", wait=wait)
    assert answer.status_code == 400 and answer.json()["error"] == "bad_request"


def test_min_seq_waits_for_the_seq_or_answers_504(cluster: Cluster) -> None:
    cluster.post({"message": "m1", "w": 3})
    held = get(cluster.urls[0], "/messages", min_seq=1)
    assert held.status_code == 200 and held.json()["messages"] == ["m1"]
    late = get(cluster.urls[0], "/entries", min_seq=2, wait=0.2)
    assert late.status_code == 504
    body = late.json()
    assert body["error"] == "min_seq_timeout" and body["min_seq"] == 2 and body["stored_seq"] == 1
    assert get(cluster.urls[0], "/messages", min_seq=0).status_code == 400


def read_events(response: requests.Response, count: int) -> list[dict[str, Any]]:
    """Parse `count` SSE events (comments and the retry line skipped) from a streamed response.
    One line iterator per response: a second `iter_lines` would lose what the first buffered."""
    lines = getattr(response, "_sse_lines", None)
    if lines is None:
        lines = response.iter_lines(chunk_size=1, decode_unicode=True)
        response._sse_lines = lines  # type: ignore[attr-defined]
    events: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                events.append(fields)
                if len(events) == count:
                    return events
            fields = {}
        elif line.startswith(":"):
            fields.setdefault("comments", 0)
        else:
            name, _, value = line.partition(": ")
            fields[name] = value
    return events


def open_stream(url: str, headers: dict[str, str] | None = None, **params: Any) -> requests.Response:
    response = requests.get(url + "/stream", params=params, headers=headers or {}, stream=True,
                            timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response


def test_the_stream_pushes_each_entry_once_in_order(cluster: Cluster) -> None:
    cluster.post({"messages": ["a", "b"], "w": 3})
    stream = open_stream(cluster.url)
    try:
        first = read_events(stream, 2)
        assert [e["id"] for e in first] == ["1", "2"]
        assert json.loads(first[0]["data"])["message"] == "a"
        assert json.loads(first[1]["data"])["seq"] == 2
        cluster.post({"message": "c", "w": 1})
        (third,) = read_events(stream, 1)
        assert third["id"] == "3" and json.loads(third["data"])["message"] == "c"
    finally:
        stream.close()


def test_last_event_id_wins_over_from_seq(cluster: Cluster) -> None:
    cluster.post({"messages": ["a", "b", "c"], "w": 3})
    stream = open_stream(cluster.urls[1], {"Last-Event-ID": "2"}, from_seq=1)
    try:
        assert [e["id"] for e in read_events(stream, 1)] == ["3"]
    finally:
        stream.close()
    from_seq = open_stream(cluster.url, from_seq=2)
    try:
        assert [e["id"] for e in read_events(from_seq, 2)] == ["2", "3"]
    finally:
        from_seq.close()
    bad = requests.get(cluster.url + "/stream", headers={"Last-Event-ID": "x1"}, timeout=HTTP_TIMEOUT_S)
    assert bad.status_code == 400


def test_an_idle_stream_sends_keep_alive_comments(capped: Cluster) -> None:
    stream = open_stream(capped.url)
    try:
        lines = stream.iter_lines(chunk_size=1, decode_unicode=True)
        assert next(lines) == "retry: 1000"
        assert next(line for line in lines if line) == ": keep-alive"
    finally:
        stream.close()


def test_followers_past_their_cap_get_503_while_reads_writes_and_health_go_on(
    capped: Cluster, wait_for: WaitFor
) -> None:
    streams = [open_stream(capped.url) for _ in range(3)]
    try:
        wait_for(lambda: capped.master.followers.active == 3)
        refused = requests.get(capped.url + "/stream", timeout=HTTP_TIMEOUT_S)
        assert refused.status_code == 503 and refused.json()["error"] == "overloaded"
        assert refused.headers["Retry-After"] == "1"
        assert get(capped.url, "/entries", from_seq=9, wait=5).status_code == 503
        assert capped.post({"message": "m", "w": 3}).status_code == 201
        assert get(capped.url, "/health").status_code == 200
        assert get(capped.url, "/messages").json()["messages"] == ["m"]
    finally:
        for stream in streams:
            stream.close()
    wait_for(lambda: capped.master.followers.active == 0)  # hang-ups give the slots back
    again = open_stream(capped.url)
    again.close()


def test_stopping_the_node_ends_its_streams(wait_for: WaitFor) -> None:
    cluster = Cluster(secondaries=1)
    try:
        stream = open_stream(cluster.url)
        wait_for(lambda: cluster.master.followers.active == 1)
        cluster.stop_master()
        # the stream's own thread gives its slot back as it ends, just after the server stopped
        wait_for(lambda: cluster.master.followers.active == 0, 20.0)
        # The node ended the stream itself: the rest reads to its end, where a stream left open
        # would raise a read timeout (keep-alives come every 15 s, the read timeout is shorter).
        rest = b"".join(stream.iter_content(chunk_size=None))
        assert b"data:" not in rest
        stream.close()
    finally:
        cluster.close()

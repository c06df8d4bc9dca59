"""Reads in bounded memory: small answers whole, large ones streamed page by page, in the same bytes.

A secondary in this process on 127.0.0.1 with an in-memory log filled directly; `requests` and raw
sockets as clients.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from replog.config import SecondaryConfig, ServerConfig
from replog.core.entry import Kind
from replog.core.wire import Entry
from replog.node import SecondaryNode
from replog.web import reads
from tests.conftest import WaitFor

TIMEOUT_S = 10.0
MAX_STREAMS = 2


@pytest.fixture
def node() -> Iterator[SecondaryNode]:
    config = SecondaryConfig(server=ServerConfig(port=0, threads=8, reserved_threads=2 * MAX_STREAMS))
    secondary = SecondaryNode(config).start()
    try:
        yield secondary
    finally:
        secondary.stop()


def fill(node: SecondaryNode, messages: list[str]) -> None:
    first = node.store.stored_seq + 1
    node.store.apply("L", [Entry(first + i, m) for i, m in enumerate(messages)])


def get(node: SecondaryNode, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(node.url + path, timeout=TIMEOUT_S, **kwargs)


def test_a_small_answer_is_whole_and_in_the_bytes_bottle_wrote_for_a_dict(node: SecondaryNode) -> None:
    messages = ["a", "b\u00e9", 'quote " and \\', "\U0001f600"]
    fill(node, messages)
    for path, expected in [
        ("/messages", {"messages": messages}),
        ("/messages?offset=1&limit=2", {"messages": messages[1:3], "offset": 1, "total": 4}),
        ("/messages?offset=9", {"messages": [], "offset": 9, "total": 4}),
    ]:
        answer = get(node, path)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.headers["Content-Length"] == str(len(answer.content))
        assert answer.content == json.dumps(expected).encode(), path
    entries = get(node, "/entries?from_seq=2&limit=2").json()
    assert [e["seq"] for e in entries["entries"]] == [2, 3] and entries["stored_seq"] == 4


def test_an_empty_log_reads_as_before(node: SecondaryNode) -> None:
    assert get(node, "/messages").content == b'{"messages": []}'
    assert get(node, "/entries").json() == {"entries": [], "stored_seq": 0}


def large_log(node: SecondaryNode, megabytes: int = 4) -> list[str]:
    messages = [f"{i:08d}-" + "x" * 1000 for i in range(megabytes * 1000)]
    fill(node, messages)
    return messages


def test_a_large_answer_is_streamed_in_the_same_bytes(node: SecondaryNode) -> None:
    messages = large_log(node)
    answer = get(node, "/messages")
    assert answer.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in answer.headers
    assert answer.content == json.dumps({"messages": messages}).encode()
    paged = get(node, "/messages?offset=10&limit=3000")
    assert paged.headers.get("Transfer-Encoding") == "chunked"
    assert paged.content == json.dumps({"messages": messages[10:3010], "offset": 10, "total": 4000}).encode()
    entries = get(node, "/entries?from_seq=1&limit=4000").json()
    assert [e["message"] for e in entries["entries"]] == messages and entries["stored_seq"] == 4000


def test_a_stream_shows_the_log_as_it_was_when_it_started(node: SecondaryNode) -> None:
    messages = large_log(node)
    with get(node, "/messages", stream=True) as answer:
        chunks = answer.iter_content(65536)
        first = next(chunks)
        fill(node, ["late"])
        body = json.loads(first + b"".join(chunks))
    assert body == {"messages": messages}


def stalled_reader(node: SecondaryNode) -> socket.socket:
    """A client that asks for the whole (large) log and reads only its first bytes."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.settimeout(TIMEOUT_S)
    sock.connect(("127.0.0.1", node.server.port))
    sock.sendall(b"GET /messages HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(64).startswith(b"HTTP/1.1 200")
    return sock


def test_large_reads_are_capped_and_everything_else_still_answers(
    node: SecondaryNode, wait_for: WaitFor
) -> None:
    """Each stream holds a worker while its client reads: past max_streams a large read is refused
    at once (503 overloaded) rather than taking the threads that /health and small reads need."""
    large_log(node, megabytes=16)  # far more than the socket buffers and waitress's watermark hold
    readers = [stalled_reader(node) for _ in range(MAX_STREAMS)]
    try:
        refused = get(node, "/messages")
        assert refused.status_code == 503 and refused.json()["error"] == "overloaded"
        assert refused.headers["Retry-After"] == "1"
        assert get(node, "/health").status_code == 200
        assert get(node, "/messages?offset=15990").status_code == 200, "a small read is never capped"
    finally:
        for sock in readers:
            sock.close()
    wait_for(lambda: get(node, "/messages").status_code == 200, 10, "a slot is free again")


def test_pages_are_bounded_in_bytes(node: SecondaryNode) -> None:
    fill(node, ["y" * 50_000] * 40)
    sizes = [len(chunk) for chunk in reads.pages(node.store, 1, 40, reads.messages_json)]
    assert len(sizes) > 1 and max(sizes) < 2 * reads.PAGE_BYTES


def test_control_records_take_a_seq_never_shown_by_messages_and_typed_in_entries(node: SecondaryNode) -> None:
    node.store.apply("L", [Entry(1, "", 0.0, 2, Kind.EPOCH_START), Entry(2, "a", 0.0, 2),
                           Entry(3, "", 0.0, 3, Kind.EPOCH_START), Entry(4, "b", 0.0, 3)])  # fmt: skip
    assert get(node, "/messages").json() == {"messages": ["a", "b"]}
    entries = get(node, "/entries").json()["entries"]
    assert [(e["seq"], e.get("kind"), e["epoch"]) for e in entries] == [
        (1, "epoch_start", 2), (2, None, 2), (3, "epoch_start", 3), (4, None, 3)
    ]  # fmt: skip
    # A page of control records only shows nothing, and the JSON stays well formed.
    assert get(node, "/messages?offset=2&limit=1").json() == {"messages": [], "offset": 2, "total": 4}

"""The HTTP layer's own answers are JSON, and connections are bounded in time: one server in this
process on 127.0.0.1, raw sockets as the clients, so the bytes on the wire are what is checked.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from waitress import wasyncore

from replog.config import ServerConfig
from replog.testing.hostile import allow_open_files
from replog.web.common import JsonBottle, json_errors, read_json_body
from replog.web.server import HttpServer, fd_budget, fds_wanted
from tests.conftest import WaitFor

MAX_BODY = 1000
TIMEOUT_S = 10.0


@pytest.fixture
def server() -> Iterator[HttpServer]:
    app = JsonBottle()

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.post("/echo")
    @json_errors
    def echo() -> dict[str, Any]:
        return read_json_body(MAX_BODY)

    config = ServerConfig(
        port=0, threads=4, max_body_bytes=MAX_BODY, request_timeout_s=1.0, idle_timeout_s=1.5
    )
    http = HttpServer(app, config)
    http.start()
    try:
        yield http
    finally:
        http.stop()


def exchange(server: HttpServer, data: bytes) -> tuple[bytes, dict[str, Any]]:
    """Send raw bytes, read until the server closes; (status line, JSON body)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head, answer[:300]
    return head.split(b"\r\n")[0], json.loads(body)


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        pytest.param(b"GARBAGE\r\n\r\n", b"400", "bad_request", id="bad-request-line"),
        pytest.param(b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n", b"400", "bad_request", id="bad-header"),
        pytest.param(
            b"POST /echo HTTP/1.1\r\nContent-Length: ten\r\n\r\n", b"400", "bad_request", id="bad-length"
        ),
        pytest.param(
            b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"400",
            "bad_request",
            id="two-lengths",
        ),
        pytest.param(
            b"GET /health HTTP/1.1\r\nX: " + b"a" * 300_000 + b"\r\n\r\n",
            b"431",
            "headers_too_large",
            id="huge-headers",
        ),
        pytest.param(
            b"POST /echo HTTP/1.1\r\nContent-Length: 300000000\r\n\r\n",
            b"413",
            "payload_too_large",
            id="huge-cl",
        ),
        pytest.param(
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"501", "not_implemented", id="bad-te"
        ),
        pytest.param(
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"400",
            "bad_request",
            id="bad-chunk",
        ),
    ],
)
def test_errors_of_the_http_layer_are_json_with_a_stable_code(
    server: HttpServer, data: bytes, status: bytes, code: str
) -> None:
    line, body = exchange(server, data)
    assert line.split(b" ")[1] == status, line
    assert body["error"] == code and isinstance(body["detail"], str) and body["detail"]


def test_the_body_limit_is_refused_from_the_declared_length_in_json(server: HttpServer) -> None:
    line, body = exchange(server, b"POST /echo HTTP/1.1\r\nContent-Length: 1001\r\n\r\n")
    assert line.startswith(b"HTTP/1.1 413")
    assert body == {
        "error": "payload_too_large",
        "detail": f"request body is over the limit of {MAX_BODY} bytes",
        "limit_bytes": MAX_BODY,
    }


def test_a_body_exactly_at_the_limit_is_read(server: HttpServer) -> None:
    raw = json.dumps({"k": "x" * (MAX_BODY - 9)}).encode()
    assert len(raw) == MAX_BODY
    answer = requests.post(f"http://127.0.0.1:{server.port}/echo", data=raw, timeout=TIMEOUT_S)
    assert answer.status_code == 200 and answer.json() == json.loads(raw)


@pytest.mark.parametrize("size", [5 * MAX_BODY, 20 * 1024 * 1024])
def test_a_client_that_sends_a_whole_oversized_body_still_reads_the_413(
    server: HttpServer, size: int
) -> None:
    """The server closes lingering: without it, closing with unread input resets the connection and
    the client, still sending, never sees the answer."""
    answer = requests.post(f"http://127.0.0.1:{server.port}/echo", data=b"x" * size, timeout=TIMEOUT_S)
    assert answer.status_code == 413
    assert answer.json()["error"] == "payload_too_large"


def test_a_chunked_body_over_the_limit_is_refused_while_it_arrives(server: HttpServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"x" * 600
        yield b"x" * 600

    answer = requests.post(f"http://127.0.0.1:{server.port}/echo", data=chunks(), timeout=TIMEOUT_S)
    assert answer.status_code == 413 and answer.json()["error"] == "payload_too_large"


def test_a_request_that_does_not_arrive_in_time_gets_a_json_408(server: HttpServer) -> None:
    line, body = exchange(server, b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\n{")
    assert line.startswith(b"HTTP/1.1 408")
    assert body == {
        "error": "request_timeout",
        "detail": "the request did not arrive within 1 s",
        "limit_s": 1.0,
    }


def test_a_connection_that_never_sends_a_byte_is_closed_without_an_answer(server: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
        assert sock.recv(100) == b""


def test_a_kept_alive_connection_is_closed_once_idle_and_answers_until_then(server: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
        for _ in range(2):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert sock.recv(100) == b"", "closed after idle_timeout, silently"


def test_a_client_that_stops_reading_a_long_answer_is_dropped_and_frees_its_worker(
    wait_for: WaitFor,
) -> None:
    """A worker writing a long answer blocks while the client does not read; the connection is
    closed after idle_timeout without progress, which ends the worker's write."""
    app = JsonBottle()
    ended: list[str] = []

    @app.get("/long")
    def long() -> Iterator[bytes]:
        try:
            for _ in range(10_000):
                yield b"x" * 65536
            ended.append("finished")
        except GeneratorExit:
            ended.append("interrupted")
            raise

    http = HttpServer(app, ServerConfig(port=0, threads=2, idle_timeout_s=1.0))
    http.start()
    try:
        with socket.create_connection(("127.0.0.1", http.port), timeout=TIMEOUT_S) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /long HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
            wait_for(lambda: ended, 20, "the worker stopped writing")
        assert ended == ["interrupted"]
        health = requests.get(f"http://127.0.0.1:{http.port}/long", timeout=TIMEOUT_S, stream=True)
        assert health.status_code == 200, "the worker is free for the next request"
        health.close()
    finally:
        http.stop()


@pytest.mark.parametrize(
    ("limit", "open_files", "expected"),
    [(4096, 20000, 4096), (4096, 1024, 256), (100, 1 << 30, 100), (4096, 100, 1)],
)
def test_the_connection_limit_fits_the_open_files_limit(limit: int, open_files: int, expected: int) -> None:
    assert fd_budget(limit, open_files) == expected
    assert fd_budget(limit, fds_wanted(limit)) == limit, "what the CLI asks for is enough"


def test_a_server_lowers_its_connection_limit_to_the_open_files_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("replog.web.server.open_files_limit", lambda: 1024)
    http = HttpServer(JsonBottle(), ServerConfig(port=0, threads=1, connection_limit=4096))
    try:
        assert http.connection_limit == 256
        assert http._server._server.adj.connection_limit == 256
    finally:
        http.stop()


def test_a_burst_of_connects_is_accepted_in_batches_not_one_per_loop_iteration(
    monkeypatch: pytest.MonkeyPatch, wait_for: WaitFor
) -> None:
    """waitress accepted one connection per iteration and an iteration costs O(open connections):
    a burst of N connects cost O(N^2) and /health waited seconds behind it."""
    iterations = [0]
    real_poll = wasyncore.poll2

    def counting(timeout: float = 0.0, map: Any = None) -> None:
        iterations[0] += 1
        real_poll(timeout, map)

    if allow_open_files(2048) < 1024 + 300:  # the server sizes its connection limit to this
        pytest.skip("this process may not open enough descriptors (ulimit -Hn)")
    monkeypatch.setattr(wasyncore, "poll2", counting)
    http = HttpServer(JsonBottle(), ServerConfig(port=0, threads=1))
    sockets = [socket.socket() for _ in range(300)]
    try:
        for sock in sockets:  # queued in the listen backlog before the loop runs
            sock.connect(("127.0.0.1", http.port))
        http.start()
        channels = http._server._server.active_channels
        wait_for(lambda: len(channels) == 300, 20, "all 300 accepted")
        assert iterations[0] < 50, f"{iterations[0]} loop iterations to accept 300 connections"
    finally:
        for sock in sockets:
            sock.close()
        http.stop()

"""The fault rig's own parts, fast: the link proxy cuts and heals, outcomes are classified by
what they prove, and the schedule covers every fault kind whatever the seed."""

from __future__ import annotations

import itertools
import random
import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from replog.chaos.faults import FaultKind, make_schedule
from replog.chaos.history import OpType
from replog.chaos.workload import classify
from replog.testing.proxy import LinkProxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield int(server.getsockname()[1])
    stop.set()
    server.close()


def _roundtrip(port: int, payload: bytes, timeout_s: float = 1.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as conn:
        conn.sendall(payload)
        return conn.recv(1024)


def test_proxy_forwards_blackholes_when_cut_and_heals(echo_port: int) -> None:
    proxy = LinkProxy(target_port=echo_port, name="test")
    proxy.start()
    try:
        assert _roundtrip(proxy.port, b"one") == b"one"
        proxy.cut()
        with pytest.raises(TimeoutError):
            _roundtrip(proxy.port, b"lost", timeout_s=0.3)
        proxy.heal()
        assert _roundtrip(proxy.port, b"two") == b"two"
    finally:
        proxy.close()


def _response(status: int, body: bytes) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = body
    return resp


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (201, b'{"seq": 3, "message": "m", "w": 2, "acks": 2}', (OpType.OK, 3, 2)),
        (503, b'{"error": "read_only", "detail": "x"}', (OpType.FAIL, None, None)),
        (503, b'{"error": "overloaded", "detail": "x"}', (OpType.FAIL, None, None)),
        (400, b'{"error": "bad_request", "detail": "x"}', (OpType.FAIL, None, None)),
        (504, b'{"error": "write_concern_timeout", "seq": 9, "acks": 1, "w": 3}', (OpType.TIMEOUT, 9, 1)),
        (503, b'{"error": "shutting_down", "seq": 4}', (OpType.TIMEOUT, 4, None)),
        (500, b"<html>oops</html>", (OpType.TIMEOUT, None, None)),
    ],
)
def test_outcomes_are_classified_by_what_they_prove(
    status: int, body: bytes, expected: tuple[OpType, int | None, int | None]
) -> None:
    assert classify(_response(status, body)) == expected


@pytest.mark.parametrize("seed", range(10))
def test_schedule_covers_every_kind_and_fits(seed: int) -> None:
    schedule = make_schedule(random.Random(seed), 40.0, ("s1", "s2"), unhealthy_after_s=1.0)
    assert {f.kind for f in schedule} == set(FaultKind)
    assert {f.targets[0] for f in schedule if f.kind is FaultKind.KILL} >= {"master"}
    for before, after in itertools.pairwise(schedule):
        assert before.at_s + before.duration_s < after.at_s
    assert schedule[-1].at_s + schedule[-1].duration_s <= 38.0
    assert schedule == make_schedule(random.Random(seed), 40.0, ("s1", "s2"), unhealthy_after_s=1.0)

"""One client can never take a node down: real node processes on 127.0.0.1 against hostile sockets.

Each test reproduces a way a single client broke a node (issue 11, A1/A2): a flood of spooled bodies
past 1,024 descriptors killed the select() loop while the process lived on; a 300 MB body was read
and spooled before being refused; a dead server loop left a deaf process behind; slowloris and idle
floods kept the master unreachable. Deadlines here are generous bounds on "answers at all", never
speed claims.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from replog.client import poll_until
from replog.testing.cluster import NodeProcess, NodeSpec, Role, free_port
from replog.testing.hostile import (
    Flood,
    allow_open_files,
    append_within,
    health_within,
    open_descriptors,
)
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.slow

ANSWER_S = 20.0  # "answers at all": far above any normal latency, far below "never"


@pytest.fixture(autouse=True)
def _enough_descriptors() -> None:
    if allow_open_files(8192) < 4096:
        pytest.skip("this process may not open 4096 descriptors (ulimit -Hn)")


@pytest.fixture
def secondary(tmp_path: Path) -> Iterator[NodeProcess]:
    node = NodeProcess(
        NodeSpec("s1", Role.SECONDARY, free_port(), tmp_path / "s1", ("--in-memory",)), tmp_path / "s1.log"
    )
    node.start()
    poll_until(lambda: health_within(node.url, 1.0) is not None, 30, 0.05, "s1 answers")
    try:
        yield node
    finally:
        node.stop()


def test_spooled_bodies_past_1024_descriptors_do_not_kill_the_server_loop(secondary: NodeProcess) -> None:
    """700 connections each send 600 KiB of a 1 MiB body and stall: each holds its socket and a
    temporary file, 1,400 descriptors. waitress's select() loop died at descriptor 1,024 and the node
    never answered again; with poll() it answers throughout and after."""
    assert secondary.pid is not None
    with Flood(secondary.spec.port) as flood:
        flood.open_spooling(700)
        pid = secondary.pid
        with contextlib.suppress(TimeoutError):  # a node whose loop died stops reading, and stays below
            poll_until(lambda: open_descriptors(pid) > 1100, 60, 0.1, "the node holds >1,100 descriptors")
        assert health_within(secondary.url, ANSWER_S) is not None, "the node answers during the flood"
        assert open_descriptors(pid) > 1100, "the flood pushed the node past 1,024 descriptors"
    assert health_within(secondary.url, ANSWER_S) is not None, "and after it"
    assert secondary.alive


def test_a_body_over_the_limit_is_refused_before_it_is_sent(secondary: NodeProcess) -> None:
    """A request announcing 300 MB gets its JSON 413 at once, without sending (or the node reading,
    or spooling) a byte of the body; it used to wait for all of it."""
    with socket.create_connection(("127.0.0.1", secondary.spec.port), timeout=ANSWER_S) as sock:
        sock.sendall(b"POST /replicate HTTP/1.1\r\nHost: x\r\nContent-Length: 300000000\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"Content-Type: application/json" in head
    assert json.loads(body) == {
        "error": "payload_too_large",
        "detail": "request body is over the limit of 8388608 bytes",
        "limit_bytes": 8388608,
    }


DYING_NODE = """
import pathlib, sys
from waitress import wasyncore
marker = pathlib.Path(sys.argv[1])
loops = {"poll": wasyncore.poll, "poll2": wasyncore.poll2}

def dying(name):
    real = loops[name]
    def loop(timeout=0.0, map=None):
        if marker.exists():
            raise ValueError("filedescriptor out of range in select()")  # what select() raised
        return real(timeout, map)
    return loop

wasyncore.poll, wasyncore.poll2 = dying("poll"), dying("poll2")
from replog.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_node_whose_server_loop_dies_exits_non_zero(tmp_path: Path) -> None:
    """The loop raising (as select() did past descriptor 1,023) must end the process with a clear
    ERROR and exit code 1, so that a supervisor restarts it, instead of a live PID that never answers."""
    port, marker, log = free_port(), tmp_path / "die-now", tmp_path / "node.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", DYING_NODE, str(marker), "secondary", f"--port={port}", "--in-memory"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        poll_until(lambda: health_within(url, 1.0) is not None, 30, 0.05, "node answers")
        marker.touch()
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "ERROR" in text and "http server loop died" in text, text[-2000:]
    assert "exiting with code 1" in text and "supervisor should restart it" in text, text[-2000:]


# --- A2: slowloris and idle floods -------------------------------------------------------------


class Dribbler(threading.Thread):
    """Keeps a slowloris flood alive: one more header byte on every socket every `every_s`."""

    def __init__(self, flood: Flood, every_s: float = 1.0) -> None:
        super().__init__(daemon=True, name="dribbler")
        self.flood, self.every_s = flood, every_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            self.flood.dribble()

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)


def writable_master(make_cluster: MakeCluster, *argv: str) -> str:
    cluster = make_cluster(master_argv=argv, in_memory=True)
    cluster.up()
    return cluster.master.url


def test_the_master_answers_while_1000_slowloris_sockets_dribble(make_cluster: MakeCluster) -> None:
    """1,000 sockets each sending a header byte every second used to fill waitress's 1,000
    connections, so /health and appends waited as long as the dribbling lasted."""
    url = writable_master(make_cluster)
    port = int(url.rsplit(":", 1)[1])
    with Flood(port) as flood:
        flood.open_slowloris(1000)
        dribbler = Dribbler(flood)
        dribbler.start()
        try:
            assert health_within(url, ANSWER_S) is not None, "/health answers during the flood"
            assert append_within(url, ANSWER_S) is not None, "a w=1 append answers during the flood"
        finally:
            dribbler.stop()


def test_the_master_answers_while_1100_idle_sockets_are_open(make_cluster: MakeCluster) -> None:
    """1,100 connections that send nothing used to lock everyone out for up to 2 minutes."""
    url = writable_master(make_cluster)
    with Flood(int(url.rsplit(":", 1)[1])) as flood:
        flood.open_idle(1100)
        assert health_within(url, ANSWER_S) is not None, "/health answers during the flood"
        assert append_within(url, ANSWER_S) is not None, "a w=1 append answers during the flood"


def test_at_the_connection_limit_the_least_active_idle_connections_make_room(
    make_cluster: MakeCluster,
) -> None:
    """With --connection-limit 200, 400 idle sockets: the oldest idle ones are closed to let new
    clients in, instead of new clients waiting behind them."""
    url = writable_master(make_cluster, "--connection-limit=200")
    with Flood(int(url.rsplit(":", 1)[1])) as flood:
        flood.open_idle(400)
        assert health_within(url, ANSWER_S) is not None
        assert append_within(url, ANSWER_S) is not None
        assert poll_until(lambda: flood.count_closed() >= 200, ANSWER_S, 0.1, "idle sockets evicted")


def test_a_slow_request_gets_a_json_408_and_is_closed(secondary: NodeProcess, tmp_path: Path) -> None:
    """A request still incomplete after --request-timeout is answered 408 in JSON and closed; a
    connection that never sends a byte is closed too (nodes restarted with short timeouts)."""
    secondary.stop()
    node = NodeProcess(
        NodeSpec("s2", Role.SECONDARY, free_port(), tmp_path / "s2",
                 ("--in-memory", "--request-timeout=1", "--idle-timeout=2")),
        tmp_path / "s2.log",
    )  # fmt: skip
    node.start()
    try:
        poll_until(lambda: health_within(node.url, 1.0) is not None, 30, 0.05, "s2 answers")
        address = ("127.0.0.1", node.spec.port)
        with (
            socket.create_connection(address, timeout=ANSWER_S) as slow,
            socket.create_connection(address, timeout=ANSWER_S) as silent,
        ):
            slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            answer = read_until_closed(slow)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "request_timeout"
            assert read_until_closed(silent) == b"", "closed without an answer: nothing was asked"
    finally:
        node.stop()


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_sigterm_still_exits_zero_after_a_flood(secondary: NodeProcess) -> None:
    """The policy must not get in the way of a clean stop with connections still open."""
    with Flood(secondary.spec.port) as flood:
        flood.open_idle(200).open_slowloris(200)
        assert secondary.pid is not None
        os.kill(secondary.pid, signal.SIGTERM)
        assert poll_until(lambda: secondary.exit_code() is not None, 20, 0.05, "exited") is not None
    assert secondary.exit_code() == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(secondary.url + "/health", timeout=2)

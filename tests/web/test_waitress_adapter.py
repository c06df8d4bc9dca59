"""The waitress internals replog relies on: present, in effect, and failing loudly when they change.

If waitress is upgraded past the version `replog.web.waitress_adapter` was checked against, these
tests say which internal moved, before a node misbehaves at its first stop.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher
from waitress.trigger import trigger

from replog.config import ServerConfig
from replog.web.server import HttpServer
from replog.web.waitress_adapter import (
    FD_SETSIZE,
    SEND_BYTES,
    WaitressChanged,
    WaitressServer,
    check_internals,
    loop_once,
)

ANSWER = b"x" * 100
TIMEOUT_S = 5.0
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def small_answer(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(ANSWER)))])
    return [ANSWER]


@contextmanager
def serving(app: Any, **settings: Any) -> Iterator[WaitressServer]:
    """A WaitressServer on its own loop thread ("loop"), stopped the way HttpServer stops it."""
    server = WaitressServer(app, host="127.0.0.1", port=0, threads=2, **settings)
    loop = threading.Thread(target=server.run, name="loop", daemon=True)
    loop.start()
    try:
        yield server
    finally:
        server.stop_accepting()
        server.stop_workers(TIMEOUT_S)
        server.close_all()
        loop.join(TIMEOUT_S)
        assert not loop.is_alive(), "close_all ends run()"


def test_every_internal_is_there_with_its_shape() -> None:
    with serving(small_answer) as server:
        check_internals(server._server, SEND_BYTES)
        assert server._server.adj.send_bytes == SEND_BYTES


def defining(cls: type, name: str) -> type:
    return next(c for c in cls.__mro__ if name in vars(c))


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (defining(trigger, "pull_trigger"), "pull_trigger"),
        (wasyncore, "close_all"),
        (HTTPChannel, "total_outbufs_len"),
        (BaseWSGIServer, "maintenance"),
        (HTTPChannel, "received"),
        (HTTPChannel, "close_when_flushed"),
        (HTTPRequestParser, "close"),
    ],
)
def test_a_removed_internal_fails_at_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str
) -> None:
    monkeypatch.delattr(owner, name)
    with pytest.raises(WaitressChanged, match=rf"waitress .* changed: .*{name}.*checked against waitress"):
        WaitressServer(small_answer, host="127.0.0.1", port=0, threads=1)


def test_a_changed_signature_fails_at_start_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ThreadedTaskDispatcher, "shutdown", lambda self: True)
    with pytest.raises(WaitressChanged, match=r"shutdown\(cancel_pending, timeout\) is gone"):
        WaitressServer(small_answer, host="127.0.0.1", port=0, threads=1)


def test_a_refused_send_bytes_fails_at_start_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    without = {k: v for k, v in Adjustments._param_map.items() if k != "send_bytes"}
    monkeypatch.setattr(Adjustments, "_param_map", without)  # what waitress does once it drops the setting
    with pytest.raises(WaitressChanged, match="send_bytes setting is refused"):
        WaitressServer(small_answer, host="127.0.0.1", port=0, threads=1)


def answer_sends(monkeypatch: pytest.MonkeyPatch, send_bytes: int) -> list[tuple[str, int]]:
    """(thread name, bytes) of each send that carried one small answer."""
    sends: list[tuple[str, int]] = []
    original = wasyncore.dispatcher.send

    def recording(self: wasyncore.dispatcher, data: bytes, do_close: bool = True) -> int:
        sent: int = original(self, data, do_close)
        if isinstance(self, HTTPChannel):
            sends.append((threading.current_thread().name, sent))
        return sent

    monkeypatch.setattr(wasyncore.dispatcher, "send", recording)
    with serving(small_answer, send_bytes=send_bytes) as server:
        answer = requests.get(f"http://127.0.0.1:{server.port}/", timeout=TIMEOUT_S)
        assert answer.content == ANSWER
    return sends


def test_send_bytes_takes_effect_a_small_answer_leaves_in_one_send_from_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sends = answer_sends(monkeypatch, SEND_BYTES)
    assert len(sends) == 1 and sends[0][0] == "loop", sends
    assert sends[0][1] > len(ANSWER), "header and body in the one send"


def test_without_send_bytes_the_worker_sends_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: waitress's own default sends from the request thread, so the test above can fail."""
    sends = answer_sends(monkeypatch, 1)
    assert any(name.startswith("waitress-") for name, _ in sends), sends


def waitress_workers() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("waitress-"))


def test_stop_answers_the_request_in_flight_then_closes_everything() -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        entered.set()
        release.wait(TIMEOUT_S)
        return small_answer(environ, start_response)

    workers_before = waitress_workers()
    server = HttpServer(slow, ServerConfig(port=0, threads=2))
    server.start()
    url = f"http://127.0.0.1:{server.port}/"
    answers: list[requests.Response] = []
    client = threading.Thread(target=lambda: answers.append(requests.get(url, timeout=TIMEOUT_S)))
    client.start()
    assert entered.wait(TIMEOUT_S)
    server.stop(drain=release.set)
    client.join(TIMEOUT_S)
    assert [(a.status_code, a.content) for a in answers] == [(200, ANSWER)], "the answer went out"
    assert not any(t.name == f"http-{server.port}" for t in threading.enumerate()), "the loop ended"
    assert waitress_workers() == workers_before, "the worker threads ended"
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=TIMEOUT_S)


def test_a_changed_error_task_fails_at_start_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ErrorTask, "execute", lambda self: None)
    with pytest.raises(WaitressChanged, match=r"ErrorTask.execute no longer renders"):
        WaitressServer(small_answer, host="127.0.0.1", port=0, threads=1)


def test_each_iteration_selects_below_fd_setsize_and_polls_past_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """select() cannot watch a descriptor past 1023 (the loop died there); poll() can, but waitress's
    poll() iteration rebuilds its poll object every time, so it is used only when needed."""
    calls: list[str] = []
    monkeypatch.setattr(wasyncore, "poll", lambda timeout, channels: calls.append("select"))
    monkeypatch.setattr(wasyncore, "poll2", lambda timeout, channels: calls.append("poll"))
    loop_once(0.0, {3: object(), FD_SETSIZE - 1: object()})
    loop_once(0.0, {3: object(), FD_SETSIZE: object()})
    loop_once(0.0, {})
    assert calls == ["select", "poll", "select"]


def test_the_loop_serves_through_poll_when_a_descriptor_is_past_1023(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real server whose map holds a descriptor >= 1024 keeps answering, never calling select()."""

    def no_select(*args: object) -> None:
        raise AssertionError("select.select was called with a descriptor past 1023")

    with serving(small_answer) as server:
        high = os.dup2(os.open(os.devnull, os.O_RDONLY), FD_SETSIZE + 8)
        try:
            monkeypatch.setattr(wasyncore.select, "select", no_select)
            server._server._map[high] = _Idle()  # a watched descriptor past FD_SETSIZE
            for _ in range(3):
                assert requests.get(f"http://127.0.0.1:{server.port}/", timeout=TIMEOUT_S).content == ANSWER
        finally:
            server._server._map.pop(high, None)
            monkeypatch.undo()
            os.close(high)


class _Idle:
    """A channel that never wants to read or write."""

    accepting = False

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False


def test_a_loop_that_dies_is_reported_not_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    """HttpServer's loop raising (as select() did) sets `failed`, which the CLI turns into exit 1."""
    http = HttpServer(small_answer, ServerConfig(port=0, threads=1))

    def dead(timeout: float = 0.0, map: object = None) -> None:
        raise ValueError("filedescriptor out of range in select()")

    monkeypatch.setattr(wasyncore, "poll", dead)
    monkeypatch.setattr(wasyncore, "poll2", dead)
    http.start()
    try:
        assert http.failed.wait(TIMEOUT_S)
        assert isinstance(http.failure, ValueError)
    finally:
        monkeypatch.undo()
        http.stop(timeout_s=0.5)


def test_a_stopped_loop_is_not_a_failure() -> None:
    http = HttpServer(small_answer, ServerConfig(port=0, threads=1))
    http.start()
    http.stop()
    assert not http.failed.is_set() and http.failure is None

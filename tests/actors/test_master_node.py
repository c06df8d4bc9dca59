"""A master node wired from its actors, with fake secondaries and the heartbeat ticked by hand."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from replog.actors.heartbeat import Tick
from replog.config import MasterConfig, ServerConfig
from replog.node import MasterNode
from replog.storage.store import MemoryStore, Store

from .fakes import FakeTransport

WaitFor = Callable[..., Any]  # the `wait_for` fixture
URLS = ("http://s1", "http://s2")
Started = tuple[MasterNode, dict[str, FakeTransport]]


@pytest.fixture
def start_master() -> Iterator[Callable[..., Started]]:
    nodes: list[MasterNode] = []

    def start(store: Store | None = None) -> Started:
        fakes: dict[str, FakeTransport] = {}
        config = MasterConfig(secondaries=URLS, server=ServerConfig(port=0, threads=8, reserved_threads=2))
        node = MasterNode(config, store=store if store is not None else MemoryStore("log-m"),
                          transports=lambda url: fakes.setdefault(url, FakeTransport()), heartbeat=False)
        node.start()
        nodes.append(node)
        return node, fakes

    yield start
    for node in nodes:
        node.stop()


def secondaries(node: MasterNode) -> list[dict[str, Any]]:
    return list(node.health()["secondaries"])


def test_health_shows_the_log_id_a_secondary_adopted_after_its_last_probe(
        start_master: Callable[..., Started], wait_for: WaitFor) -> None:
    node, fakes = start_master()
    node.monitor.tell(Tick())  # both secondaries answer: empty, no log id yet
    wait_for(lambda: [s["status"] for s in secondaries(node)] == ["Healthy", "Healthy"])
    # The handshake that verifies each (even with nothing stored) carries the log id: adopted.
    wait_for(lambda: [s["log_id"] for s in secondaries(node)] == ["log-m", "log-m"])
    node.store.append(["a"])
    wait_for(lambda: [s["acked_seq"] for s in secondaries(node)] == [1, 1])
    assert [f.store.log_id for f in fakes.values()] == ["log-m", "log-m"]
    assert [s["log_id"] for s in secondaries(node)] == ["log-m", "log-m"]  # no probe since


def test_health_keeps_showing_the_log_id_a_probe_saw(start_master: Callable[..., Started],
                                                     wait_for: WaitFor) -> None:
    node, fakes = start_master()
    fakes[URLS[0]].store.apply("other", [])  # a secondary of another cluster
    node.monitor.tell(Tick())
    wait_for(lambda: secondaries(node)[0]["probe_error"] is not None)
    assert secondaries(node)[0]["log_id"] == "other"
    assert secondaries(node)[0]["status"] == "Unhealthy"


def test_fatal_store_failure_stops_the_node_with_an_error_line(
        start_master: Callable[..., Started], wait_for: WaitFor, caplog: pytest.LogCaptureFixture) -> None:
    store = BrokenStore("log-m")
    node, _ = start_master(store)
    node.monitor.tell(Tick())
    wait_for(lambda: not node.health()["read_only"])
    with caplog.at_level(logging.ERROR):
        store.append(["a"])
        wait_for(lambda: node.fatal_reason is not None)
        wait_for(lambda: not node.gate.is_alive() and not any(r.is_alive() for r in node.links.values()))
    assert "checksum mismatch" in (node.fatal_reason or "")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("fatal error; stopping the node" in e and "checksum mismatch" in e for e in errors), errors
    node.stop()  # idempotent: the test's own stop returns at once


class BrokenStore(MemoryStore):
    """A master store whose log fails its checksum when a link reads it."""

    def read(self, from_seq: int, max_count: int, max_bytes: int = 1 << 62) -> list[Any]:
        from replog.core.records import CorruptLog  # noqa: PLC0415 -- only this fake raises it

        raise CorruptLog("checksum mismatch", path="entries.dat", offset=42)

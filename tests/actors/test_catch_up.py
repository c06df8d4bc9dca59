"""A master node that restarted behind its secondaries learns what it lost from them (issue 11 C8)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from replog.actors.heartbeat import Tick
from replog.config import MasterConfig, ServerConfig
from replog.core.entry import Entry
from replog.node import MasterNode
from replog.storage.store import MemoryStore

from .fakes import FakeTransport

WaitFor = Callable[..., Any]



URLS = ("http://s1", "http://s2")


Behind = tuple[MasterNode, dict[str, FakeTransport]]


@pytest.fixture
def master_behind(request: pytest.FixtureRequest) -> Iterator[Behind]:
    """A master that holds 1..3 while its secondaries hold 1..6 (the master lost 4..6 in a crash).
    The link checks at once (the store's first wake-up), so a fetch error is set before the start."""
    log = [Entry(s, f"m{s}", 10.0 + s, 1, key=f"k{s}" if s == 5 else None) for s in range(1, 7)]
    store = MemoryStore("log-m")
    store.apply("log-m", log[:3])
    fakes: dict[str, FakeTransport] = {}
    for url in URLS:
        fakes[url] = FakeTransport()
        fakes[url].store.apply("log-m", log)
        trouble = getattr(request, "param", None)  # "serves nothing", or a fetch error
        fakes[url].serves_entries = trouble != "serves nothing"
        fakes[url].fetch_error = None if trouble == "serves nothing" else trouble
    config = MasterConfig(secondaries=URLS, server=ServerConfig(port=0, threads=8, reserved_threads=2))
    node = MasterNode(config, store=store, transports=fakes.__getitem__, heartbeat=False)
    node.start()
    yield node, fakes
    node.stop()


def test_a_master_behind_its_secondaries_learns_the_entries_before_it_takes_writes(
    master_behind: Behind, wait_for: WaitFor
) -> None:
    node, fakes = master_behind
    node.monitor.tell(Tick())
    wait_for(lambda: node.store.stored_seq == 6)
    held = [fakes[url].store.read(4, 10) for url in URLS]  # each stamped its own stored_at
    assert node.store.read(4, 10) in held, "seq, message, stored_at, epoch, kind and key as one holds them"
    wait_for(lambda: not node.health()["read_only"])
    health = node.health()
    assert health["read_only_reason"] is None and health["last_seq"] == 6
    assert sum(f.fetches for f in fakes.values()) >= 1
    node.store.append(["new"])
    wait_for(lambda: all(f.store.stored_seq == 7 for f in fakes.values()))
    assert [e.message for e in fakes[URLS[0]].store.read(1, 10)] == [f"m{s}" for s in range(1, 7)] + ["new"]


@pytest.mark.parametrize("master_behind", ["HTTP 503"], indirect=True)  # learning fails: it stays behind
def test_while_behind_the_master_is_read_only_and_says_why(master_behind: Behind, wait_for: WaitFor) -> None:
    node, _ = master_behind
    node.monitor.tell(Tick())
    wait_for(lambda: (node.health()["read_only_reason"] or "").startswith("behind: "))
    health = node.health()
    assert health["read_only"] is True
    assert health["read_only_reason"] in {f"behind: {url} holds seq 6, this node 3" for url in URLS}
    wait_for(lambda: (node.health()["catch_up"] or {}).get("last_error") is not None)
    assert node.view.read_only and node.store.stored_seq == 3
    assert max(s["acked_seq"] for s in health["secondaries"]) <= 3, "nothing past our log is counted"


@pytest.mark.parametrize("master_behind", ["serves nothing"], indirect=True)
def test_secondaries_that_claim_entries_they_do_not_serve_are_conflicts_not_a_reason_to_wait(
    master_behind: Behind, wait_for: WaitFor
) -> None:
    """Issue 11 C7: more than the master holds, unverifiable: not counted, shown, and the master
    is not kept read-only by it (here both do it: no quorum is left, and /health says why)."""
    node, _ = master_behind
    node.monitor.tell(Tick())
    wait_for(lambda: all(s["conflict"] for s in node.health()["secondaries"]))
    health = node.health()
    for row in health["secondaries"]:
        assert "serves nothing past seq 3" in row["conflict"] and not row["counted"]
    assert health["read_only_reason"] == "no quorum: 1 of 3 nodes available and verified, 2 needed"
    assert node.store.stored_seq == 3

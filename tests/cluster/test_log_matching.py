"""A secondary's word is checked (issue 11 C7) and a master that restarted behind its secondaries
catches up before it takes writes (issue 11 C8): real nodes, real data directories."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from replog.client import ReplogClient, ReplogHTTPError, poll_until
from replog.core.wire import Entry
from replog.storage.disk import DiskStore
from replog.testing.cluster import LocalCluster
from replog.testing.process import NodeProcess
from tests.cluster.conftest import MakeCluster

pytestmark = pytest.mark.slow

CLAIM = 1_000_000


class LyingSecondary(BaseHTTPRequestHandler):
    """Says it holds seq 1,000,000 to every probe and batch, and serves no entries."""

    def do_GET(self) -> None:
        if self.path.startswith("/entries"):
            self._answer({"entries": [], "stored_seq": CLAIM})
        else:
            self._answer({"role": "secondary", "acked_seq": CLAIM, "log_id": None, "storage": {"ok": True}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer({"acked_seq": CLAIM})

    def _answer(self, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def liar() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), LyingSecondary)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def status_of(answer: Any) -> int:
    """The HTTP status an append got: 201, or the error's."""
    return 201 if isinstance(answer, dict) else int(answer.status)


def try_append(client: ReplogClient, message: str, w: int) -> Any:
    try:
        return client.append(message, w, timeout_s=1.0, request_timeout_s=10)
    except ReplogHTTPError as exc:
        return exc


def test_a_secondary_that_claims_more_than_the_master_holds_never_makes_a_w3_ack(
    make_cluster: MakeCluster, liar: str
) -> None:
    cluster = make_cluster({"s1": ()})
    master = cluster.master
    argv = tuple(a for a in master.spec.extra_argv if not a.startswith("--secondaries="))
    links = f"--secondaries={cluster.link_url('s1')},{liar}"
    cluster.master = NodeProcess(replace(master.spec, extra_argv=(links, *argv)), cluster.log_path("master"))
    cluster.start()
    health = cluster.wait_health(
        lambda h: any(s["url"] == liar and s["status"] == "Healthy" for s in h["secondaries"])
    )
    for i in range(5):
        answer = try_append(cluster.client, f"m{i}", 3)
        assert status_of(answer) in (503, 504), f"w=3 acknowledged with a lying secondary: {answer}"
    # It cannot be learned from (it serves nothing past our log): a conflict, not counted, and it
    # does not keep the master read-only: the master and s1 still make w=2.
    health = cluster.wait_health(lambda h: any(s["url"] == liar and s["conflict"] for s in h["secondaries"]))
    lying = next(s for s in health["secondaries"] if s["url"] == liar)
    assert lying["counted"] is False and "serves nothing" in lying["conflict"]
    poll_until(lambda: not cluster.client.health()["read_only"], 10, 0.02, "writable with s1")
    assert status_of(try_append(cluster.client, "w2", 2)) == 201
    assert status_of(try_append(cluster.client, "w3", 3)) == 504, "never counted toward w"


def doctor(data_dir: Path, after: int, messages: list[str]) -> None:
    """While the node is stopped: cut its log after seq `after` and append other content there."""
    store = DiskStore.open(data_dir)
    try:
        store.truncate_after(after, "test: other content at these seqs")
        assert store.log_id is not None
        store.apply(store.log_id, [Entry(after + 1 + i, m) for i, m in enumerate(messages)])
    finally:
        store.close()


def test_a_secondary_holding_other_content_is_a_visible_conflict_and_never_counted(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster().up()
    for i in range(5):
        cluster.client.append(f"m{i}", 3)
    cluster.stop("s2")
    doctor(cluster.secondaries["s2"].spec.data_dir, 3, ["evil4", "evil5"])
    cluster.start("s2")
    cluster.wait_healthy("s2")
    # Its acked seq looks as before (5): the next batch's check (the entry before it) finds it out.
    for i in range(3):
        answer = try_append(cluster.client, f"after{i}", 3)
        assert status_of(answer) in (503, 504), f"w=3 acknowledged with a conflicting secondary: {answer}"
    s2 = cluster.link_url("s2")
    health = cluster.wait_health(lambda h: any(s["url"] == s2 and s["conflict"] for s in h["secondaries"]))
    row = next(s for s in health["secondaries"] if s["url"] == s2)
    assert row["counted"] is False and row["acked_seq"] == 0
    assert "other content" in row["conflict"]
    assert status_of(try_append(cluster.client, "w2", 2)) == 201, "the master and s1 still make w=2"
    assert cluster.messages("s2")[3:5] == ["evil4", "evil5"], "never overwritten"
    assert "log conflict; secondary not counted" in cluster.log_text("master")


def entries(cluster: LocalCluster, name: str) -> list[tuple[int, str]]:
    client = ReplogClient(cluster.nodes[name].url, request_timeout_s=5)
    return [(e["seq"], e["message"]) for e in client.entries(1, 10_000)]


def test_a_master_that_restarts_behind_its_secondaries_learns_before_it_takes_writes(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(master_argv=("--fsync=never",)).up()
    written = [cluster.client.append(f"m{i}", 3)["seq"] for i in range(20)]
    assert written == list(range(1, 21))
    cluster.stop("master")
    store = DiskStore.open(cluster.master.spec.data_dir)  # the lost tail of a machine crash
    try:
        assert store.truncate_after(8, "test: a crash lost the tail") == 12
    finally:
        store.close()
    cluster.start("master")
    poll_until(lambda: not cluster.client.health()["read_only"], 20, 0.02, "master writable again")
    log = cluster.log_text("master")
    assert "master is behind a secondary" in log and "learned entries" in log
    assert "master is read-only reason=behind: " in log, "read-only, saying why, until it caught up"
    after = [cluster.client.append(f"new{i}", 3)["seq"] for i in range(3)]
    assert after == [21, 22, 23], "new writes go after the recovered seqs"
    expected = [(s, f"m{s - 1}") for s in range(1, 21)] + [(21 + i, f"new{i}") for i in range(3)]
    poll_until(lambda: all(entries(cluster, n) == expected for n in cluster.nodes), 10, 0.05, "all equal")

"""Cluster mode with real processes: kill -9 and SIGSTOP of the master, and what clients see."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from replog.client import ReplogClient, ReplogHTTPError, poll_until
from replog.testing.cluster import LocalCluster
from tests.cluster.conftest import FAST

pytestmark = pytest.mark.slow


@pytest.fixture(name="cluster")
def cluster_fixture(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(
        tmp_path, secondaries=("s1", "s2"), common_argv=FAST, log_dir=tmp_path / "logs", cluster_mode=True
    )
    cluster.start()
    yield cluster
    cluster.stop()


def health(cluster: LocalCluster, name: str) -> dict[str, Any]:
    return ReplogClient(cluster.nodes[name].url, request_timeout_s=2).health()


def roles(cluster: LocalCluster, name: str) -> list[dict[str, Any]]:
    path = cluster.nodes[name].spec.data_dir / "roles.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_kill_9_of_the_master_elects_another_and_clients_follow_it(cluster: LocalCluster) -> None:
    first = cluster.current_master()  # usually `master`, which stands at once; whichever won
    assert ReplogClient(cluster.nodes[first].url).append("one", "majority")["acks"] >= 2
    cluster.kill(first)
    second = cluster.current_master(30)
    assert second != first
    # A client pointed at any surviving node follows its 421 to the new master.
    other = next(n for n in cluster.nodes if n not in (first, second))
    answer = ReplogClient(cluster.nodes[other].url).append("two", "majority")
    assert answer["acks"] >= 2
    assert ReplogClient(cluster.nodes[second].url).messages() == ["one", "two"]
    assert health(cluster, second)["epoch"] > 2
    # Restarted on its data directory, the killed master is a secondary of the new epoch and catches up.
    cluster.start(first)
    poll_until(lambda: ReplogClient(cluster.nodes[first].url).messages() == ["one", "two"], 15, 0.05,
               "the killed master caught up")  # fmt: skip
    back = health(cluster, first)
    assert back["role"] == "secondary" and back["master"] == cluster.nodes[second].url
    assert back["epoch"] == health(cluster, second)["epoch"]


def test_a_paused_master_is_replaced_and_steps_down_without_acknowledging_old_epoch_writes(
    cluster: LocalCluster,
) -> None:
    first = cluster.current_master()
    old_epoch = health(cluster, first)["epoch"]
    ReplogClient(cluster.nodes[first].url).append("before", "majority")
    cluster.pause(first)
    second = cluster.current_master(30, exclude=(first,))
    new_epoch = health(cluster, second)["epoch"]
    assert new_epoch > old_epoch
    # A write sent to the zombie while it sleeps (the kernel takes the connection and the bytes): it
    # reads it only after SIGCONT, when a new master exists. It must never answer 201 for it: its
    # lease ran out and its epoch is over.
    port = cluster.nodes[first].spec.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("POST", "/messages", body=json.dumps({"message": "zombie", "w": 1}),
                 headers={"Content-Type": "application/json"})  # fmt: skip
    cluster.resume(first)
    answer = conn.getresponse()
    text = answer.read().decode()
    conn.close()
    assert answer.status != 201, text
    assert json.loads(text)["error"] in ("read_only", "not_master", "master_changed"), text
    # It steps down: a secondary of the newer epoch, following the new master.

    poll_until(
        lambda: (
            health(cluster, first)["role"] == "secondary" and health(cluster, first)["epoch"] >= new_epoch
        ),
        15,
        0.05,
        "the old master stepped down",
    )
    assert ReplogClient(cluster.nodes[second].url).append("after", "majority")["acks"] >= 2
    poll_until(
        lambda: ReplogClient(cluster.nodes[first].url).messages() == ["before", "after"],
        15,
        0.05,
        "the old master caught up",
    )
    # Never two masters in one epoch, by every node's recorded history.
    masters: dict[int, set[str | None]] = {}
    for name in cluster.nodes:
        for line in roles(cluster, name):
            if line["role"] == "master":
                masters.setdefault(line["epoch"], set()).add(line["master"])
    assert all(len(urls) == 1 for urls in masters.values()), masters
    with pytest.raises(ReplogHTTPError) as refused:
        ReplogClient(cluster.nodes[first].url).append_many([], 1)
    assert refused.value.status in (400, 421)


def test_majority_writes_acknowledged_across_a_kill_9_failover_are_all_kept_in_one_order(
    cluster: LocalCluster,
) -> None:
    """Writers keep appending with w=majority (retrying anywhere after any error) while the master is
    killed: every 201 is on both survivors at the end, and their logs are the same."""
    first = cluster.current_master()
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    urls = [node.url for node in cluster.nodes.values()]

    def writer(index: int) -> None:
        count = 0
        while not stop.is_set():
            message = f"w{index}-{count}"
            count += 1

            def attempt(message: str = message) -> dict[str, Any] | None:
                for url in urls:  # any node: a secondary's 421 is followed to the master
                    try:
                        return ReplogClient(url, request_timeout_s=3).append(message, "majority", timeout_s=2)
                    except (ReplogHTTPError, OSError):
                        continue
                return None

            try:
                poll_until(attempt, 30, 0.02, f"{message} acknowledged")
            except TimeoutError:
                return
            with lock:
                acked.append(message)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    poll_until(lambda: len(acked) >= 30, 20, 0.01, "writes before the kill")
    cluster.kill(first)
    before = len(acked)
    poll_until(lambda: len(acked) >= before + 30, 40, 0.01, "writes after the failover")
    stop.set()
    for thread in threads:
        thread.join(40)
    survivors = [name for name in cluster.nodes if name != first]

    def converged() -> list[str] | None:
        logs = [ReplogClient(cluster.nodes[n].url).messages() for n in survivors]
        return logs[0] if all(log == logs[0] for log in logs) else None

    final = poll_until(converged, 20, 0.05, "survivors converged")
    missing = set(acked) - set(final)
    assert not missing, f"acknowledged with w=majority but lost: {sorted(missing)[:10]}"


def test_a_master_killed_with_an_unreplicated_w1_write_rolls_it_back_when_it_returns(
    cluster: LocalCluster,
) -> None:
    """Issue 12 item 4 with processes: the master takes a w=1 write that no other node ever gets
    (both secondaries killed a moment before; its lease still runs), then is killed -9. The others
    elect a master and write; the old master, restarted, moves its write into rollback.jsonl
    (counted in /health) and ends with the same log as the others."""
    first = cluster.current_master()
    url = cluster.nodes[first].url
    ReplogClient(url).append("before", "majority")
    others = [n for n in cluster.nodes if n != first]
    for name in others:
        cluster.kill(name)
    lost = requests.post(url + "/messages", json={"message": "lost", "w": 1}, timeout=5)
    assert lost.status_code == 201, lost.text  # the price of w=1: held by the master alone
    cluster.kill(first)
    cluster.start(*others)
    second = cluster.current_master(30, exclude=(first,))
    assert ReplogClient(cluster.nodes[second].url).append("after", "majority")["acks"] >= 2
    cluster.start(first)

    def entries(name: str) -> list[tuple[int, int, str]]:
        body = requests.get(cluster.nodes[name].url + "/entries", timeout=5).json()["entries"]
        return [(e["seq"], e["epoch"], e["message"]) for e in body]

    def identical() -> bool:
        logs = [entries(name) for name in cluster.nodes]
        return all(log == logs[0] for log in logs)

    poll_until(identical, 20, 0.05, "all logs identical")
    assert ReplogClient(url).messages() == ["before", "after"]
    back = health(cluster, first)
    assert back["role"] == "secondary" and back["rolled_back_entries"] == 1
    path = cluster.nodes[first].spec.data_dir / "rollback.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["message"] for line in lines] == ["lost"]
    assert "rolled back seqs=" in cluster.log_text(first)

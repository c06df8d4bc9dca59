"""Cluster mode in process: three `ClusterNode`s on 127.0.0.1 elect a master and fail over."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from replog.actors.election import MasterCalled
from replog.cluster.node import ClusterNode
from replog.cluster.switch import RoleSwitch
from replog.config import StorageConfig
from replog.net.transport import EPOCH_HEADER, MASTER_HEADER
from replog.node import open_store
from replog.testing.incluster import InProcessCluster
from tests.conftest import wait_for


@pytest.fixture(name="cluster")
def cluster_fixture(tmp_path: Path) -> Any:
    with InProcessCluster(tmp_path) as cluster:
        cluster.start()
        yield cluster


def writable_master(cluster: InProcessCluster, timeout_s: float = 15.0) -> str:
    """The one node whose master role is up and takes writes (polled, bounded)."""

    def ready() -> str | None:
        masters = cluster.masters()
        if len(masters) != 1:
            return None
        health = cluster.health(masters[0])
        return masters[0] if health["role"] == "master" and not health["read_only"] else None

    name: str = wait_for(ready, timeout_s, "one writable master")
    return name


def post(url: str, message: str, w: Any = "majority", key: str | None = None) -> requests.Response:
    body: dict[str, Any] = {"message": message, "w": w}
    return requests.post(url + "/messages", json=body, timeout=10)


def messages(url: str) -> list[str]:
    answer: list[str] = requests.get(url + "/messages", timeout=5).json()["messages"]
    return answer


def test_a_fresh_cluster_elects_a_master_at_epoch_2_and_takes_majority_writes(tmp_path: Path) -> None:
    # The others wait 3-6 s before standing, so the `master` node, standing at once, wins epoch 2
    # even on a busy machine.
    with InProcessCluster(tmp_path, timings={"election_min_s": 3.0, "election_max_s": 6.0}) as cluster:
        cluster.start()
        check_first_election(cluster)


def check_first_election(cluster: InProcessCluster) -> None:
    name = writable_master(cluster)
    assert name == "n1"
    health = cluster.health(name)
    assert (
        health["epoch"] == 2
        and health["master"] == cluster.urls["n1"]
        and health["voted_for"] == health["me"]
    )
    answer = post(cluster.urls[name], "a")
    assert answer.status_code == 201, answer.text
    assert answer.json()["acks"] >= 2
    for other in ("n2", "n3"):
        health = cluster.health(other)
        assert health["role"] == "secondary"
        assert health["epoch"] == 2
    wait_for(lambda: all(messages(cluster.urls[n]) == ["a"] for n in cluster.names), 10, "a everywhere")
    # The epoch-start record takes seq 1 on every node, is never shown by GET /messages, and GET
    # /entries shows it typed.
    entries = requests.get(cluster.urls["n2"] + "/entries", timeout=5).json()["entries"]
    assert [(e["seq"], e.get("kind"), e["epoch"]) for e in entries] == [(1, "epoch_start", 2), (2, None, 2)]
    roles = [json.loads(line) for line in (cluster.root / "n1" / "roles.jsonl").read_text().splitlines()]
    assert {"epoch": 2, "role": "master", "master": cluster.urls["n1"]}.items() <= roles[-1].items()
    metrics = requests.get(cluster.urls["n1"] + "/metrics", timeout=5).text
    assert "replog_is_master 1.0" in metrics and "replog_epoch 2.0" in metrics
    assert "replog_master_changes_total 1.0" in metrics


def test_a_secondary_answers_421_naming_the_master_and_stores_nothing(cluster: InProcessCluster) -> None:
    name = writable_master(cluster)
    other = next(n for n in cluster.names if n != name)
    before = cluster.health(other)["acked_seq"]
    answer = post(cluster.urls[other], "misdirected")
    assert answer.status_code == 421
    body = answer.json()
    assert body["error"] == "not_master" and body["master"] == cluster.urls[name] and body["epoch"] == 2
    assert cluster.health(other)["acked_seq"] == before
    assert "misdirected" not in messages(cluster.urls[name])


def test_a_stale_epoch_replicate_is_refused_409_and_stores_nothing(cluster: InProcessCluster) -> None:
    name = writable_master(cluster)
    other = next(n for n in cluster.names if n != name)
    log_id = cluster.health(other)["log_id"]
    before = cluster.health(other)["acked_seq"]
    headers = {EPOCH_HEADER: "1", MASTER_HEADER: cluster.urls[other]}
    batch = {"log_id": log_id, "first_seq": before + 1, "messages": ["from a deposed master"]}
    answer = requests.post(cluster.urls[other] + "/replicate", json=batch, headers=headers, timeout=5)
    assert answer.status_code == 409
    assert answer.json() | {"detail": ""} == {
        "error": "stale_epoch", "epoch": 2, "master": cluster.urls[name], "detail": ""
    }  # fmt: skip
    assert cluster.health(other)["acked_seq"] == before
    no_headers = requests.post(cluster.urls[other] + "/replicate", json=batch, timeout=5)
    assert no_headers.status_code == 400  # cluster mode takes batches only from a named master
    assert cluster.health(other)["acked_seq"] == before


def test_stopping_the_master_elects_another_that_takes_writes_and_the_old_one_rejoins(
    cluster: InProcessCluster,
) -> None:
    first = writable_master(cluster)
    assert post(cluster.urls[first], "before").status_code == 201
    wait_for(lambda: all(messages(cluster.urls[n]) == ["before"] for n in cluster.names), 10, "replicated")
    cluster.stop(first)
    second = writable_master(cluster)
    assert second != first
    assert cluster.health(second)["epoch"] > 2
    answer = post(cluster.urls[second], "after")
    assert answer.status_code == 201, answer.text
    assert messages(cluster.urls[second]) == ["before", "after"]
    # The old master, restarted on its data directory, is a secondary of the new epoch and catches up.
    cluster.start(first)
    wait_for(lambda: messages(cluster.urls[first]) == ["before", "after"], 15, "the old master caught up")
    health = cluster.health(first)
    assert health["role"] == "secondary" and health["master"] == cluster.urls[second]
    assert health["epoch"] == cluster.health(second)["epoch"]
    roles = [json.loads(line) for line in (cluster.root / first / "roles.jsonl").read_text().splitlines()]
    assert roles[-1]["role"] == "secondary" and roles[-1]["master"] == cluster.urls[second]


def test_waiting_writers_of_a_deposed_master_get_master_changed(cluster: InProcessCluster) -> None:
    name = writable_master(cluster)
    others = [n for n in cluster.names if n != name]
    cluster.stop(others[1])  # w=3 can no longer be met: the writer waits
    results: list[requests.Response] = []
    writer = threading.Thread(target=lambda: results.append(post(cluster.urls[name], "waits", w=3)))
    writer.start()
    wait_for(lambda: cluster.health(name).get("waiting_writers") == 1, 10, "the writer waits")
    # A call from a master of a higher epoch deposes this one.
    headers = {EPOCH_HEADER: "9", MASTER_HEADER: cluster.urls[others[0]]}
    log_id = cluster.health(name)["log_id"]
    batch = {"log_id": log_id, "first_seq": 1, "messages": []}
    requests.post(cluster.urls[name] + "/replicate", json=batch, headers=headers, timeout=5)
    writer.join(10)
    assert results and results[0].status_code == 503
    body = results[0].json()
    assert body["error"] == "master_changed" and isinstance(body["seq"], int)
    assert "outcome unknown" in body["detail"]
    health = cluster.health(name)
    assert health["epoch"] >= 9 and health["role"] in ("secondary", "candidate")


def test_a_returning_master_rolls_its_unreplicated_entries_back_and_follows_the_new_master(
    cluster: InProcessCluster,
) -> None:
    """Issue 12 item 4: an old master back with entries it stored and never replicated (a kill -9
    mid-write: acknowledged with w=1 at most) moves them into its rollback.jsonl, counted in /health,
    and then holds the new master's log. Before rollback existed its log stayed diverged (a conflict,
    never counted: "new" with w=2 timed out)."""
    first = writable_master(cluster)
    assert post(cluster.urls[first], "before").status_code == 201
    wait_for(lambda: all(messages(cluster.urls[n]) == ["before"] for n in cluster.names), 10, "replicated")
    cluster.stop(first)
    # Entries it stored and never replicated (its process died before the batch left).
    store = open_store(StorageConfig(cluster.root / first), None)
    store.append(["ghost1", "ghost2", "ghost3"], epoch=store.epoch)
    store.close()
    second = writable_master(cluster)
    third = next(n for n in cluster.names if n not in (first, second))
    cluster.stop(third)
    cluster.start(first)  # back with seqs 3..5 of its own; the new master has its epoch start at 3
    wait_for(lambda: cluster.health(first)["master"] == cluster.urls[second], 10, "the old master follows")
    answer = requests.post(
        cluster.urls[second] + "/messages", json={"message": "new", "w": 2, "timeout": 10}, timeout=15
    )
    assert answer.status_code == 201, answer.text  # the old master rolled back and holds "new"
    assert messages(cluster.urls[first]) == ["before", "new"]
    health = cluster.health(first)
    assert health["role"] == "secondary" and health["rolled_back_entries"] == 3
    lines = [json.loads(line) for line in (cluster.root / first / "rollback.jsonl").read_text().splitlines()]
    assert [(line["seq"], line["message"], line["epoch"]) for line in lines] == [
        (3, "ghost1", 2), (4, "ghost2", 2), (5, "ghost3", 2)
    ]  # fmt: skip
    assert all("diverged from the master of epoch" in line["reason"] for line in lines)
    cluster.start(third)

    def entries(name: str) -> list[tuple[int, int, str]]:
        body = requests.get(cluster.urls[name] + "/entries", timeout=5).json()["entries"]
        return [(e["seq"], e["epoch"], e["message"]) for e in body]

    wait_for(lambda: entries(first) == entries(second) == entries(third), 15, "all logs identical")


def test_roles_jsonl_says_master_before_the_role_can_answer_a_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault run's checker places every 201 by roles.jsonl; a kill -9 between taking the role
    and recording it must not leave a 201 it cannot place, so the line comes first."""
    seen: list[tuple[str, bool]] = []
    record = RoleSwitch._record

    def spy(self: RoleSwitch, epoch: int, role: str, master: str | None) -> None:
        seen.append((role, self._role is not None))  # was a master role already answering?
        record(self, epoch, role, master)

    monkeypatch.setattr(RoleSwitch, "_record", spy)
    with InProcessCluster(tmp_path) as cluster:
        cluster.start()
        writable_master(cluster)
    assert ("master", False) in seen and ("master", True) not in seen, seen


def test_a_followed_masters_calls_skip_the_election_round_trip_and_keep_it_heard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a secondary follows a master in its epoch, that master's batches and probes are admitted
    without asking the election actor; the election still hears of them before each tick, so no
    secondary stands while the master lives."""
    asked: list[object] = []
    ask = ClusterNode._ask

    def counting(self: ClusterNode, message: object) -> Any:
        if isinstance(message, MasterCalled):
            asked.append(message)
        return ask(self, message)

    monkeypatch.setattr(ClusterNode, "_ask", counting)
    with InProcessCluster(tmp_path) as cluster:
        cluster.start()
        name = writable_master(cluster)
        epoch = cluster.health(name)["epoch"]
        url = cluster.urls[name]
        until = time.monotonic() + 3 * 0.9  # over 3x the longest election timeout of these timings
        writes = 0
        while time.monotonic() < until and writes < 10_000:
            assert post(url, f"m{writes}").status_code == 201
            writes += 1
        assert len(asked) <= 4, f"{len(asked)} round trips for {writes} majority writes plus probes"
        for other in cluster.nodes:
            health = cluster.health(other)
            assert health["epoch"] == epoch, "a secondary stood although the master lived"
            assert other == name or health["master"] == url

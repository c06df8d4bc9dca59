"""A node whose disk fails tells the truth over HTTP (issue 11 C6), with the disk's faults injected.

The master: the writer in flight gets 503 `storage_unavailable` (its entry was dropped, never a
504 "stored"), later writers the same with `Retry-After`, `/health` is read-only with the reason,
and writes work again once the disk does, without a restart. A secondary: `/replicate` answers 503
and `/health` shows why. `tests/cluster/test_full_disk.py` does it with a real full disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from replog.config import MasterConfig, SecondaryConfig, ServerConfig
from replog.core.health import HealthPolicy
from replog.core.matching import crc_of
from replog.node import MasterNode, SecondaryNode
from replog.storage.disk import DiskStore
from tests.conftest import wait_for
from tests.unit.stores import Disk
from tests.web.conftest import FAST_LINK, HTTP_TIMEOUT_S, SMALL_SERVER

RETRY_S = 0.02


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    return Disk(monkeypatch)


@pytest.fixture
def secondary(tmp_path: Path, disk: Disk) -> Iterator[SecondaryNode]:
    store = DiskStore.open(tmp_path / "s1", sync_fd=disk.sync, retry_s=RETRY_S)
    node = SecondaryNode(
        SecondaryConfig(name="s1", server=ServerConfig(port=0, threads=8)), store=store
    ).start()
    yield node
    node.stop()


@pytest.fixture
def master(tmp_path: Path, disk: Disk, secondary: SecondaryNode) -> Iterator[MasterNode]:
    store = DiskStore.open(tmp_path / "m", new_log_id="L1", sync_fd=disk.sync, retry_s=RETRY_S)
    config = MasterConfig(
        secondaries=(secondary.url,), server=SMALL_SERVER, link=FAST_LINK, heartbeat_interval_s=0.05,
        health=HealthPolicy(0.2, 0.5),
    )  # fmt: skip
    node = MasterNode(config, store=store).start()
    wait_for(lambda: not health(node.url)["read_only"])
    yield node
    node.stop()


def health(url: str) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(url + "/health", timeout=HTTP_TIMEOUT_S).json()
    return answer


def append(url: str, message: str, w: int = 1) -> requests.Response:
    return requests.post(
        url + "/messages", json={"message": message, "w": w, "timeout": 5}, timeout=HTTP_TIMEOUT_S
    )


def test_a_master_whose_disk_fills_refuses_honestly_and_recovers(master: MasterNode, disk: Disk) -> None:
    assert append(master.url, "a", 2).status_code == 201
    disk.full = True
    in_flight = append(master.url, "b")  # stored in memory, then its write fails: dropped
    assert in_flight.status_code == 503, in_flight.text
    assert in_flight.json()["error"] == "storage_unavailable"
    assert (
        "before seq 2 was durable" in in_flight.json()["detail"]
        and "nothing was stored" in in_flight.json()["detail"]
    )
    state = health(master.url)
    assert state["read_only"] is True and state["storage"]["ok"] is False
    assert "No space left on device" in state["storage"]["reason"]
    refused = append(master.url, "c")
    assert (refused.status_code, refused.json()["error"]) == (503, "storage_unavailable")
    assert refused.headers["Retry-After"] == "1"
    disk.full = False
    wait_for(lambda: health(master.url)["storage"]["ok"])
    answer = append(master.url, "d", 2)
    assert (answer.status_code, answer.json()["seq"]) == (201, 2), "the dropped entry's seq, reused"
    assert requests.get(master.url + "/messages", timeout=HTTP_TIMEOUT_S).json()["messages"] == ["a", "d"]


def test_a_secondary_whose_disk_fails_answers_503_and_says_why(secondary: SecondaryNode, disk: Disk) -> None:
    def replicate(first_seq: int, messages: list[str]) -> requests.Response:
        prev = first_seq - 1  # the batches below follow "a" at seq 1
        head = {
            "epoch": 1,
            "prev_seq": prev,
            "prev_epoch": min(prev, 1),
            "prev_crc": crc_of("a") if prev else 0,
        }
        body = {"log_id": "L1", **head, "first_seq": first_seq, "messages": messages}
        return requests.post(secondary.url + "/replicate", json=body, timeout=HTTP_TIMEOUT_S)

    assert replicate(1, ["a"]).json() == {"acked_seq": 1}
    disk.full = True
    for _ in range(2):  # the batch in flight, then one refused at once
        answer = replicate(2, ["b"])
        assert (answer.status_code, answer.json()["error"]) == (503, "storage_unavailable")
        assert "Retry-After" in answer.headers
    state = health(secondary.url)
    assert state["acked_seq"] == 1 and state["storage"]["ok"] is False
    assert "No space left on device" in state["storage"]["reason"]
    disk.full = False
    wait_for(lambda: health(secondary.url)["storage"]["ok"])
    assert replicate(2, ["b"]).json() == {"acked_seq": 2}

"""An unpaged read of a large log, on a real node process: bounded memory, and the node stays responsive.

`GET /messages` without paging on a 2 GB log once built a 2 GB answer in memory (the master peaked
at 7.7 GB) and stalled /health for 15 s. Here a secondary holds ~256 MB of messages; its peak RSS
(VmHWM, from /proc, reset first) may exceed its RSS before the read by only a fraction of that, and /health
answers while the read is in progress (its client pausing midway).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from replog.client import poll_until
from replog.core.matching import crc_of
from replog.testing.cluster import NodeProcess, NodeSpec, Role, free_port
from replog.testing.hostile import health_within, peak_rss_bytes, reset_peak_rss, rss_bytes

pytestmark = pytest.mark.slow

MESSAGE_BYTES = 1000
PER_BATCH = 7000  # ~7 MB bodies, under the default 8 MiB limit
BATCHES = 37  # ~259 MB of messages
TOTAL = PER_BATCH * BATCHES


@pytest.fixture
def loaded(tmp_path: Path) -> Iterator[NodeProcess]:
    node = NodeProcess(
        NodeSpec("s1", Role.SECONDARY, free_port(), tmp_path / "s1", ("--fsync=never",)), tmp_path / "s1.log"
    )
    node.start()
    try:
        poll_until(lambda: health_within(node.url, 1.0) is not None, 30, 0.05, "s1 answers")
        with requests.Session() as session:
            previous_crc = 0
            for batch in range(BATCHES):
                first = batch * PER_BATCH + 1
                messages = [f"{seq:09d}".ljust(MESSAGE_BYTES, "m") for seq in range(first, first + PER_BATCH)]
                prev = {"prev_seq": first - 1, "prev_epoch": min(first - 1, 1), "prev_crc": previous_crc}
                body = {"log_id": "L", "epoch": 1, **prev, "first_seq": first, "messages": messages}
                previous_crc = crc_of(messages[-1])
                answer = session.post(node.url + "/replicate", data=json.dumps(body), timeout=120)
                assert answer.status_code == 200 and answer.json()["acked_seq"] == first + PER_BATCH - 1
        # A fresh process on the durable log: the heap that loading left behind would hide the read's.
        node.stop()
        node.start()
        poll_until(lambda: health_within(node.url, 1.0) is not None, 60, 0.05, "s1 answers again")
        yield node
    finally:
        node.stop()


def test_an_unpaged_read_of_a_256_mb_log_stays_in_bounded_memory(loaded: NodeProcess) -> None:
    assert loaded.pid is not None
    reset_peak_rss(loaded.pid)  # what loading the log cost is not the read's
    before = rss_bytes(loaded.pid)
    with requests.get(loaded.url + "/messages", stream=True, timeout=120) as answer:
        assert answer.status_code == 200
        chunks = answer.iter_content(1 << 20)
        received = [next(chunks)]
        # The read is in progress (its client paused): the node answers others meanwhile.
        assert health_within(loaded.url, 30.0) is not None, "/health answers during a large read"
        received.extend(chunks)
    growth = peak_rss_bytes(loaded.pid) - before
    messages = json.loads(b"".join(received))["messages"]
    assert len(messages) == TOTAL
    assert messages[0] == "000000001".ljust(MESSAGE_BYTES, "m") and messages[-1].startswith(f"{TOTAL:09d}")
    log_bytes = TOTAL * MESSAGE_BYTES
    assert growth < log_bytes // 8, f"peak RSS grew by {growth / 1e6:.0f} MB reading {log_bytes / 1e6:.0f} MB"

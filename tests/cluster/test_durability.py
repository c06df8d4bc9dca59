"""Nothing acknowledged is lost across kill -9 and restarts; identity and position survive."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from replog.client import ReplogClient, ReplogHTTPError, poll_until

# Multi-process: `-m "not slow"` leaves it out of a quick run.
pytestmark = pytest.mark.slow


class Writers:
    """Background writers recording every message the master answered 201."""

    def __init__(self, url: str, threads: int, w: int) -> None:
        self.acked: dict[int, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(url, t, w)) for t in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self, url: str, t: int, w: int) -> None:
        client = ReplogClient(url, request_timeout_s=5)
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                answer = client.append(f"t{t}-{i}", w)
            except (ReplogHTTPError, OSError):
                continue  # not acknowledged: may or may not be stored
            with self._lock:
                self.acked[answer["seq"]] = answer["message"]

    def wait_for(self, count: int) -> None:
        poll_until(lambda: len(self.acked) >= count, 30, what=f"{count} acknowledged writes")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


def assert_holds_all_acked(log: list[str], acked: dict[int, str]) -> None:
    assert len(log) == len(set(log)), "no duplicates"
    for seq, message in acked.items():
        assert log[seq - 1] == message, f"acknowledged seq {seq} lost or moved"


def test_master_killed_mid_load_keeps_every_acknowledged_write(make_cluster) -> None:
    cluster = make_cluster().up()
    writers = Writers(cluster.master.url, threads=4, w=1)
    try:
        writers.wait_for(100)
        cluster.master.kill()
    finally:
        writers.stop()
    log_id = ReplogClient(cluster.secondaries["s1"].url).health()["log_id"]
    cluster.start("master")
    cluster.wait_writable()
    assert cluster.client.health()["log_id"] == log_id, "the master keeps its identity"
    assert_holds_all_acked(cluster.messages("master"), writers.acked)
    after = cluster.client.append("after-restart", 3)
    assert after["seq"] == len(cluster.messages("master")), "seq numbering continues"
    final = cluster.wait_converged()
    assert_holds_all_acked(final, writers.acked)


def test_secondary_killed_mid_load_gets_only_what_it_lacks(make_cluster) -> None:
    cluster = make_cluster().up()
    s1 = cluster.secondaries["s1"]
    writers = Writers(cluster.master.url, threads=4, w=2)
    try:
        writers.wait_for(100)
        s1.kill()
        writers.wait_for(len(writers.acked) + 100)
    finally:
        writers.stop()
    s1.start()
    final = cluster.wait_converged()
    assert_holds_all_acked(final, writers.acked)
    held_at_start = int(re.findall(r"secondary ready .*acked_seq=(\d+)", cluster.log_text("s1"))[-1])
    stats = ReplogClient(s1.url).health()
    assert held_at_start > 0, "it kept its log across kill -9"
    assert stats["duplicate_entries"] == 0, "nothing it held was sent again"
    assert stats["received_entries"] == len(final) - held_at_start


def test_secondary_alone_keeps_every_w3_write_after_master_and_it_die(make_cluster) -> None:
    cluster = make_cluster().up()
    acked = [cluster.client.append(f"w3-{i}", 3)["message"] for i in range(30)]
    cluster.master.kill()
    cluster.secondaries["s2"].kill()
    cluster.start("s2")
    assert cluster.messages("s2") == acked


def test_flipped_byte_refuses_to_start_naming_file_and_offset(make_cluster) -> None:
    cluster = make_cluster().up()
    for i in range(20):
        cluster.client.append(f"m{i}", 3)
    s1 = cluster.secondaries["s1"]
    s1.stop()
    data = Path(s1.spec.data_dir) / "entries.dat"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    s1.start()
    poll_until(lambda: s1.exit_code() is not None, 10, what="s1 refusing to start")
    assert s1.exit_code() != 0
    assert re.search(r"entries\.dat.*offset \d+", cluster.log_text("s1")), cluster.log_text("s1")[-500:]


def test_secondary_from_another_cluster_is_refused_and_reported(make_cluster) -> None:
    other = make_cluster({"x1": (), "x2": ()}).up()
    other.client.append("from another cluster", 3)
    foreign_dir = other.secondaries["x1"].spec.data_dir
    other.stop()

    cluster = make_cluster()
    cluster.start("master", "s2")
    s1 = cluster.secondaries["s1"]
    s1.spec = replace(s1.spec, data_dir=foreign_dir)
    cluster.start("s1")
    cluster.wait_writable()
    cluster.client.append("ours", 2)

    def reported() -> dict | None:
        entry = next(s for s in cluster.client.health()["secondaries"] if s["url"] == s1.url)
        return entry if "log_id_mismatch" in (entry["probe_error"] or "") else None

    entry = poll_until(reported, 10, what="mismatch in /health")
    assert entry["status"] != "Healthy"
    assert cluster.messages("s1") == ["from another cluster"], "never merged"

"""`replog send | tail | status` as a user runs them (subprocesses) against a real cluster, and
their bad arguments and an unreachable node: one clear line on stderr, non-zero exit, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from replog.testing.cluster import LocalCluster, free_port

pytestmark = pytest.mark.slow
RUN_S = 60.0


@pytest.fixture(scope="module", name="cluster")
def cluster_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("cli"), master_argv=("--heartbeat-interval=0.2",))
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.stop()


def replog(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "replog", *args], input=stdin, capture_output=True,
                          text=True, timeout=RUN_S, env={**os.environ, "REPLOG_NODE": ""}, check=False)


def test_send_tail_and_status(cluster: LocalCluster, tmp_path: Path) -> None:
    url = cluster.master.url
    one = replog("send", "--node", url, "-w", "3", "hello")
    assert one.returncode == 0, one.stderr
    assert one.stdout.strip() == "seq=1 w=3 acks=3"
    lines = tmp_path / "lines.txt"
    lines.write_text("a\nb\n\nc\n")
    bulk = replog("send", "--node", url, "--file", str(lines), "--batch", "2", "-w", "majority")
    assert bulk.returncode == 0, bulk.stderr
    assert bulk.stdout.strip() == "sent 3 messages seqs=2..4"
    assert bulk.stderr == ""  # no progress bar when stderr is not a terminal
    piped = replog("send", "--node", url, "-", stdin="d\ne\n")
    assert piped.returncode == 0 and piped.stdout.strip() == "sent 2 messages seqs=5..6"
    secondary = cluster.secondaries["s1"].url
    cluster.wait_converged()
    tail = replog("tail", "--node", secondary, "-n", "3")
    assert tail.returncode == 0, tail.stderr
    assert tail.stdout.splitlines() == ["4\tc", "5\td", "6\te"]
    from_seq = replog("tail", "--node", url, "--from-seq", "2", "-n", "2")
    assert from_seq.stdout.splitlines() == ["2\ta", "3\tb"]
    status = replog("status", "--node", url)
    assert status.returncode == 0, status.stderr
    rows = status.stdout.splitlines()
    assert rows[0].split()[:3] == ["NODE", "ROLE", "STATUS"]
    assert len(rows) == 4 and "master" in rows[1] and rows[2].split()[1:3] == ["secondary", "Healthy"]


def test_tail_follow_prints_new_entries(cluster: LocalCluster) -> None:
    url = cluster.master.url
    start = int(cluster.client.health()["last_seq"]) + 1
    argv = [sys.executable, "-m", "replog", "tail", "-f", "--node", url, "--from-seq", str(start)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert replog("send", "--node", url, "followed").returncode == 0
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"{start}\tfollowed"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=RUN_S)
    assert "Traceback" not in err


@pytest.mark.parametrize("args", [
    ["send"],
    ["send", "m", "--file", "x"],
    ["send", "m", "--batch", "0"],
    ["tail", "--from-seq", "zero"],
    ["send", "m", "--deadline", "-1"],
    ["nonsense"],
    [],
])
def test_bad_arguments_exit_2_with_a_message(args: list[str]) -> None:
    result = replog(*args)
    assert result.returncode == 2
    assert result.stderr.strip() and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["send", "m"], ["tail"], ["tail", "-f", "--from-seq", "1"], ["status"]])
def test_an_unreachable_node_is_one_line_and_exit_1(args: list[str]) -> None:
    node = f"http://127.0.0.1:{free_port()}"
    result = replog(*args, "--node", node, "--deadline", "0.5")
    assert result.returncode == 1
    assert result.stderr.startswith("replog: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_a_refused_request_is_one_line_and_exit_1(cluster: LocalCluster, tmp_path: Path) -> None:
    result = replog("send", "--node", cluster.master.url, "-w", "7", "m")
    assert result.returncode == 1
    assert "400 bad_request" in result.stderr and "Traceback" not in result.stderr
    missing = replog("send", "--node", cluster.master.url, "--file", str(tmp_path / "none.txt"))
    assert missing.returncode == 1 and "No such file" in missing.stderr

"""A master whose own log turns out unreadable stops, says why, and exits non-zero."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from replog.client import ReplogClient, poll_until
from replog.config import SecondaryConfig, ServerConfig
from replog.node import SecondaryNode
from replog.storage.datadir import LOG_FILE
from replog.storage.disk import DiskStore, FsyncPolicy
from replog.testing.cluster import free_port

# A DiskStore keeps the newest entries in memory, at most 8 MiB of them after recovery; older ones
# are read from the file. 24 MiB of entries put entry 1 outside the cache.
PADDING = "x" * (512 * 1024)
ENTRIES = 48


def test_a_master_that_finds_its_log_corrupt_while_replicating_exits_1(tmp_path: Path) -> None:
    data = tmp_path / "master"
    store = DiskStore.open(data, fsync=FsyncPolicy.NEVER, new_log_id="L")
    for i in range(ENTRIES):  # entry 1 ends up outside the cache
        store.append([f"msg-{i}-{PADDING}"])
    store.close()
    secondary_port, port = free_port(), free_port()
    log = tmp_path / "master.log"
    with log.open("wb") as out:
        master = subprocess.Popen(
            [sys.executable, "-m", "replog", "master", f"--port={port}", f"--data-dir={data}",
             f"--secondaries=http://127.0.0.1:{secondary_port}", "--heartbeat-interval=0.05",
             "--retry-base=0.01", "--retry-max=0.1"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    secondary = None
    try:
        poll_until(ReplogClient(f"http://127.0.0.1:{port}", request_timeout_s=1).health, 20)  # recovered
        with (data / LOG_FILE).open("r+b") as f:  # damage entry 1 after the checksummed recovery
            offset = f.read(4096).index(b"msg-0")
            f.seek(offset)
            f.write(b"MSG-0")
        config = SecondaryConfig(name="s1", server=ServerConfig(port=secondary_port, threads=8))
        secondary = SecondaryNode(config).start()  # the link sends it entries 1.. from the file
        assert master.wait(timeout=30) == 1
    finally:
        master.kill()
        if secondary is not None:
            secondary.stop()
    text = log.read_text()
    assert "ERROR" in text and "fatal error; stopping the node" in text, text[-3000:]
    assert LOG_FILE in text  # the reason names the damaged file

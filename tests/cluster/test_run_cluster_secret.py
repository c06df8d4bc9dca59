"""`python run_cluster.py` gives its cluster a secret: in a private file, never on a command line."""

from __future__ import annotations

import contextlib
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from replog.client import poll_until
from replog.net.transport import SECRET_HEADER
from replog.testing.cluster import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def three_free_ports() -> int:
    """A port B with B+1 and B+2 free right now too (the small race is acceptable for a test)."""
    for _ in range(50):
        base = free_port()
        try:
            for port in (base + 1, base + 2):
                socket.create_server(("127.0.0.1", port)).close()
        except OSError:
            continue
        return base
    raise RuntimeError("no three consecutive free ports")


@contextlib.contextmanager
def running(tmp_path: Path, *extra: str) -> Iterator[tuple[int, Path]]:
    base, log = three_free_ports(), tmp_path / "run_cluster.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "run_cluster.py", f"--base-port={base}", f"--data-dir={tmp_path / 'data'}",
             "--in-memory", *extra],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        poll_until(lambda: f"master http://127.0.0.1:{base}" in log.read_text(), 60, 0.1, "cluster up")
        yield base, log
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_the_cluster_gets_a_secret_in_a_private_file_that_the_nodes_require(tmp_path: Path) -> None:
    with running(tmp_path) as (base, log):
        secret_file = tmp_path / "data" / "cluster-secret"
        assert f"cluster secret: {secret_file}" in log.read_text()
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        secret = secret_file.read_text().strip()
        assert len(secret) >= 32
        s1 = f"http://127.0.0.1:{base + 1}"
        assert requests.post(s1 + "/faults", json={"delay": 0}, timeout=5).status_code == 403
        allowed = requests.post(s1 + "/faults", json={"delay": 0}, headers={SECRET_HEADER: secret}, timeout=5)
        assert allowed.status_code == 200
        master = f"http://127.0.0.1:{base}"
        # run_cluster prints the URLs once every node answers /health; quorum comes with the heartbeat.
        poll_until(lambda: not requests.get(master + "/health", timeout=5).json()["read_only"], 30, 0.05,
                   "master writable")
        answer = requests.post(master + "/messages", json={"message": "m", "w": 3}, timeout=30)
        assert answer.status_code == 201, "the master holds the secret too: replication works"
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        assert secret not in ps, "the secret shows in ps"
    with running(tmp_path):
        assert (tmp_path / "data" / "cluster-secret").read_text().strip() == secret, "reused by the next run"


def test_insecure_runs_without_a_secret(tmp_path: Path) -> None:
    with running(tmp_path, "--insecure") as (base, log):
        assert "cluster secret" not in log.read_text()
        s1 = f"http://127.0.0.1:{base + 1}"
        assert requests.post(s1 + "/faults", json={"delay": 0}, timeout=5).status_code == 200

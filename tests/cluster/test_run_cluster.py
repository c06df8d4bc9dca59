"""`python run_cluster.py --demo` as a user runs it: a demo that cannot finish exits non-zero."""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Multi-process: `-m "not slow"` leaves it out of a quick run.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def three_ports_the_last_taken() -> Iterator[int]:
    """A base port B with B and B+1 free and B+2 held by this test, so S2 cannot bind it."""
    rng = random.Random()
    for _ in range(100):
        base = rng.randrange(20_000, 60_000)
        socks: list[socket.socket] = []
        try:
            for port in (base, base + 1, base + 2):
                socks.append(socket.create_server(("127.0.0.1", port)))
        except OSError:
            for sock in socks:
                sock.close()
            continue
        socks[0].close()
        socks[1].close()
        try:
            yield base
        finally:
            socks[2].close()
        return
    raise RuntimeError("no three consecutive free ports found")


def test_demo_exits_non_zero_when_s2_cannot_start() -> None:
    with three_ports_the_last_taken() as base:
        done = subprocess.run(
            [sys.executable, "run_cluster.py", "--demo", f"--base-port={base}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    assert done.returncode != 0, done.stdout
    assert "DEMO PASSED" not in done.stdout
    assert "node s2 exited" in done.stderr, done.stderr

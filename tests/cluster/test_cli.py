"""`python -m replog` as a user runs it: env twins, the secret warning, clean SIGTERM, bad flags."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from replog.client import ReplogClient, poll_until
from replog.testing.cluster import free_port

# Multi-process: `-m "not slow"` leaves it out of a quick run.
pytestmark = pytest.mark.slow


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "replog", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


def test_env_twins_configure_a_node_and_sigterm_exits_zero(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "s.log"
    proc = start(
        [],
        log,
        {
            "REPLOG_ROLE": "secondary",
            "REPLOG_PORT": str(port),
            "REPLOG_NAME": "envnode",
            "REPLOG_DATA_DIR": str(tmp_path / "data"),
            "REPLOG_DELAY": "0.25",
        },
    )
    try:
        health = poll_until(ReplogClient(f"http://127.0.0.1:{port}", request_timeout_s=1).health, 20)
        assert health["name"] == "envnode" and health["faults"]["delay_s"] == 0.25
        assert (tmp_path / "data").is_dir()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0  # exits by itself, with 0: SIGTERM is handled
    finally:
        proc.kill()
    text = log.read_text()
    assert "no --cluster-secret" in text, "a node without a secret warns about it"
    assert "node=envnode" in text


def test_a_node_with_a_secret_does_not_warn(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "s.log"
    proc = start(["secondary", f"--port={port}", "--in-memory", "--cluster-secret=s3cret"], log)
    try:
        poll_until(ReplogClient(f"http://127.0.0.1:{port}", request_timeout_s=1).health, 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert "no --cluster-secret" not in log.read_text()
    assert "in memory only" in log.read_text(), "--in-memory says what it costs"


def test_bad_configuration_is_refused_with_a_message(tmp_path: Path) -> None:
    for args, expected in (
        (["master", "--in-memory"], "--secondaries"),
        (["secondary", "--error-rate=2"], "error rate"),
        (["nonsense"], "usage"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "replog", *args],
            capture_output=True,
            timeout=30,
            env={**os.environ, "REPLOG_ROLE": ""},
            check=False,
        )
        assert done.returncode != 0, args
        assert expected in (done.stdout + done.stderr).decode(), (args, done.stderr)


def test_a_node_that_cannot_start_exits_instead_of_hanging(tmp_path: Path) -> None:
    port = free_port()
    holder = start(["secondary", f"--port={port}", "--in-memory"], tmp_path / "holder.log")
    try:
        poll_until(ReplogClient(f"http://127.0.0.1:{port}", request_timeout_s=1).health, 20)
        for role, extra in (("master", ["--secondaries=http://127.0.0.1:9"]), ("secondary", [])):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "replog",
                    role,
                    f"--port={port}",
                    f"--data-dir={tmp_path / role}",
                    *extra,
                ],
                capture_output=True,
                timeout=30,
                check=False,
            )
            assert done.returncode == 1, (role, done.stderr[-500:])
            assert b"cannot start" in done.stderr, done.stderr[-500:]
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(timeout=10)


def test_a_secondary_listed_twice_is_refused_at_start_with_exit_2(tmp_path: Path) -> None:
    """The same secondary spelled twice let w=3 be acknowledged by two nodes."""
    done = subprocess.run(
        [sys.executable, "-m", "replog", "master", "--in-memory",
         "--secondaries=http://127.0.0.1:9001,http://127.0.0.1:9002,HTTP://127.0.0.1:9001/"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-500:]
    assert b"listed twice" in done.stderr
    assert b"'HTTP://127.0.0.1:9001/' is 'http://127.0.0.1:9001'" in done.stderr

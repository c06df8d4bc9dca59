"""`python -m replog` as a user runs it: env twins, the secret warning, clean SIGTERM, bad flags."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from replog.client import ReplogClient, poll_until
from replog.net.transport import SECRET_HEADER
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


# --- D11: secure by default ------------------------------------------------------------------


def run_briefly(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "replog", *args],
        capture_output=True,
        timeout=30,
        check=False,
        env={**os.environ, "REPLOG_ROLE": "", **(env or {})},
    )


@pytest.mark.parametrize("role", ["secondary", "master"])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "node.example"])
def test_a_node_reachable_from_other_machines_needs_a_secret(role: str, host: str) -> None:
    """Without a secret anyone who reaches a secondary can write into its log: refused (exit 2)."""
    extra = ["--secondaries=http://127.0.0.1:9"] if role == "master" else []
    done = run_briefly([role, f"--host={host}", "--port=0", "--in-memory", *extra])
    assert done.returncode == 2, done.stderr[-500:]
    assert b"--cluster-secret-file" in done.stderr and b"--insecure" in done.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_insecure_is_the_explicit_opt_out_and_warns(tmp_path: Path, how: str) -> None:
    port = free_port()
    args = ["secondary", "--host=0.0.0.0", f"--port={port}", "--in-memory"]
    env = {"REPLOG_INSECURE": "1"} if how == "env" else {}
    log = tmp_path / "s.log"
    proc = start([*args, "--insecure"] if how == "flag" else args, log, env)
    try:
        poll_until(ReplogClient(f"http://127.0.0.1:{port}", request_timeout_s=1).health, 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert "no --cluster-secret: ANY MACHINE (--insecure) can call internal endpoints" in log.read_text()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_secret_can_come_from_a_file_and_never_shows_in_ps(tmp_path: Path, how: str) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("  s3cret-from-a-file\n")
    port = free_port()
    args = ["secondary", f"--port={port}", "--in-memory"]
    env = {"REPLOG_CLUSTER_SECRET_FILE": str(secret_file)} if how == "env" else {}
    proc = start([*args, f"--cluster-secret-file={secret_file}"] if how == "flag" else args,
                 tmp_path / "s.log", env)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        poll_until(ReplogClient(url, request_timeout_s=1).health, 20)
        assert b"s3cret" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        batch = {"log_id": "L", "epoch": 1, "prev_seq": 0, "prev_epoch": 0, "prev_crc": 0, "first_seq": 1,
                 "messages": ["m"]}
        assert requests.post(url + "/replicate", json=batch, timeout=5).status_code == 403
        wrong = requests.post(url + "/replicate", json=batch, headers={SECRET_HEADER: "nope"}, timeout=5)
        assert wrong.status_code == 403
        right = requests.post(url + "/replicate", json=batch, headers={SECRET_HEADER: "s3cret-from-a-file"},
                              timeout=5)  # fmt: skip
        assert right.status_code == 200 and right.json() == {"acked_seq": 1}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert "no --cluster-secret" not in (tmp_path / "s.log").read_text()


def test_a_secret_file_that_is_empty_missing_or_doubled_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for args, expected in (
        ([f"--cluster-secret-file={empty}"], b"is empty"),
        ([f"--cluster-secret-file={tmp_path / 'missing'}"], b"cannot read it"),
        ([f"--cluster-secret-file={empty}", "--cluster-secret=x"], b"not both"),
        (["--cluster-secret=two words "], b"printable ASCII"),
    ):
        done = run_briefly(["secondary", "--in-memory", *args])
        assert done.returncode == 2, (args, done.stderr[-300:])
        assert expected in done.stderr, (args, done.stderr[-300:])

"""Real `python -m replog` processes on 127.0.0.1 that can be started, killed, paused and restarted.

Nodes are subprocesses (not threads) so that kill -9 and SIGSTOP hit exactly one node, the way a
crash or a stalled VM would. A node keeps its data dir across restarts. `LocalCluster`
(replog.testing.cluster) puts them together into a cluster.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


class Role(enum.Enum):
    MASTER = "master"
    SECONDARY = "secondary"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: Role
    port: int
    data_dir: Path
    extra_argv: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    # a command the node runs under, e.g. `ip netns exec NS` (which execs: the pid stays the node's,
    # so kill -9 and SIGSTOP still hit exactly the node)
    launcher: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def argv(self) -> list[str]:
        return [
            *self.launcher,
            sys.executable,
            "-m",
            "replog",
            self.role.value,
            f"--host={self.host}",
            f"--port={self.port}",
            f"--data-dir={self.data_dir}",
            f"--name={self.name}",
            *self.extra_argv,
        ]


def pinned(role: Role) -> tuple[str, ...]:
    """The `--cpu` flag that keeps each node's threads on one core: the master on the first CPU
    this process may use, the secondaries on the last (the same one on a one-CPU machine). On a
    2-core machine this is worth ~60%, since a node's threads stop handing the GIL across cores."""
    cpus = sorted(os.sched_getaffinity(0))
    return (f"--cpu={cpus[0] if role is Role.MASTER else cpus[-1]}",)


def free_port() -> int:
    """A port free right now; the tiny race with other processes is acceptable for a test rig."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NodeProcess:
    """One node's process across restarts; only the runner's thread drives it."""

    def __init__(self, spec: NodeSpec, log_path: Path | None) -> None:
        """`log_path` None lets the node write to this process's stdout and stderr."""
        self.spec = spec
        self._log_path = log_path
        self._log_file: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.starts = 0
        self._down_on_purpose = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return self.spec.url

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.alive:
            return
        self.spec.data_dir.mkdir(parents=True, exist_ok=True)
        if self._log_file is None and self._log_path is not None:
            self._log_file = self._log_path.open("ab")
        if self._log_file is not None:
            self._log_file.write(f"--- start {self.starts} at {time.time():.3f}\n".encode())
            self._log_file.flush()
        self._proc = subprocess.Popen(
            self.spec.argv(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=None if self._log_file is None else subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C to the runner must not reach the nodes first
        )
        self.paused = False
        self._down_on_purpose = False
        self.starts += 1
        log.info("node started node=%s pid=%d url=%s", self.name, self._proc.pid, self.url)

    def kill(self) -> None:
        """kill -9: no shutdown path runs, whatever is not durable is gone."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGKILL)
        self._proc.wait()
        self.paused = False
        self._down_on_purpose = True
        log.info("node killed node=%s", self.name)

    def pause(self) -> None:
        if self.alive and not self.paused:
            assert self._proc is not None
            self._proc.send_signal(signal.SIGSTOP)
            self.paused = True
            log.info("node paused node=%s", self.name)

    def resume(self) -> None:
        if self.alive and self.paused:
            assert self._proc is not None
            self._proc.send_signal(signal.SIGCONT)
            self.paused = False
            log.info("node resumed node=%s", self.name)

    def stop(self, grace_s: float = 5.0) -> None:
        """Graceful stop at the end of a run; falls back to kill -9."""
        if self._proc is not None and self._proc.poll() is None:
            self.resume()
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("node ignored SIGTERM node=%s", self.name)
                self.kill()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def died_unexpectedly(self) -> int | None:
        """The exit code if the node exited without being killed by us (a crash, or a stray
        signal from outside the run); None while it runs or is down on purpose."""
        if self._proc is None or self._down_on_purpose:
            return None
        return self._proc.poll()

"""`roles.jsonl`: every (epoch, role) change of a cluster-mode node, one fsynced JSON line each.

The fault run's checker compares these histories across nodes: never two masters accepting writes
in one epoch (FAILOVER.md §8). A line is `{"time", "epoch", "role", "master"}` (`time`: wall clock,
seconds; `master`: the URL this node follows, itself when it is master, null when unknown). A node
without a data directory keeps its history in memory (`history`), for tests.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from replog.storage.datadir import fsync_dir

ROLES_FILE = "roles.jsonl"


class RoleLog:
    """Appends a line per change and fsyncs it before returning. Called only from the node's one
    role-switch thread, so lines never interleave and no lock is needed."""

    def __init__(self, data_dir: Path | None, clock: Callable[[], float] = time.time) -> None:
        self.path = None if data_dir is None else data_dir / ROLES_FILE
        self._clock = clock
        self.history: list[dict[str, Any]] = []

    def record(self, epoch: int, role: str, master: str | None) -> None:
        line = {"time": self._clock(), "epoch": epoch, "role": role, "master": master}
        self.history.append(line)
        if self.path is None:
            return
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)


def read_roles(path: Path) -> list[dict[str, Any]]:
    """A node's history, oldest first (a torn last line, from a crash mid-write, is skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    history = []
    for line in lines:
        try:
            history.append(json.loads(line))
        except ValueError:
            continue
    return history

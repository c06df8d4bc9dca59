"""`--pin` in run_cluster.py and the benchmark: one core for the master, another for the rest."""

from __future__ import annotations

import pytest

from replog.testing import cluster
from replog.testing.cluster import Role, pinned


def test_master_and_secondaries_get_different_cores_of_those_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster.os, "sched_getaffinity", lambda _pid: {3, 1})
    assert pinned(Role.MASTER) == ("--cpu=1",)
    assert pinned(Role.SECONDARY) == ("--cpu=3",)


def test_one_core_is_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster.os, "sched_getaffinity", lambda _pid: {0})
    assert pinned(Role.MASTER) == pinned(Role.SECONDARY) == ("--cpu=0",)

"""`--pin` in run_cluster.py and the benchmark: one core for the master, another for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from replog.testing import process
from replog.testing.cluster import LocalCluster, Role, pinned


def test_master_and_secondaries_get_different_cores_of_those_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process.os, "sched_getaffinity", lambda _pid: {3, 1})
    assert pinned(Role.MASTER) == ("--cpu=1",)
    assert pinned(Role.SECONDARY) == ("--cpu=3",)


def test_one_core_is_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process.os, "sched_getaffinity", lambda _pid: {0})
    assert pinned(Role.MASTER) == pinned(Role.SECONDARY) == ("--cpu=0",)


def test_a_pinned_local_cluster_passes_each_node_its_core(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(process.os, "sched_getaffinity", lambda _pid: {3, 1})
    cluster = LocalCluster(tmp_path, pin=True)
    assert "--cpu=1" in cluster.master.spec.argv()
    assert all("--cpu=3" in s.spec.argv() for s in cluster.secondaries.values())
    unpinned = LocalCluster(tmp_path)
    assert not any(a.startswith("--cpu") for n in unpinned.nodes.values() for a in n.spec.argv())

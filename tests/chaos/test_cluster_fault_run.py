"""A short cluster-mode fault run: three elected nodes (each in its own network namespace when this
process may make them), the master killed, paused past the election timeout and cut off, repeated
failovers, and a clean verdict from every cluster rule of the checker.

Slow and multi-process, like the static fault run (`-m "not chaos"` skips it). A master killed
mid-write comes back with a conflicting suffix, which log matching rolls back into its
rollback.jsonl; the checker finds every rolled-back w=1 ack there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from replog.chaos.cluster_run import ClusterRunConfig, run_cluster_mode
from replog.chaos.report import render_summary
from replog.testing.netns import unavailable

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

SEED = 7
DURATION_S = 45.0
CI = os.environ.get("CI") == "true"


@pytest.mark.timeout(240)
def test_cluster_mode_fault_run_is_clean(tmp_path: Path) -> None:
    netns = unavailable() is None
    if not netns and CI:
        pytest.fail(f"CI needs network namespaces for the master cut: {unavailable()}")
    result = run_cluster_mode(
        ClusterRunConfig(
            out_dir=tmp_path / "run", duration_s=DURATION_S, seed=SEED, converge_timeout_s=30.0, netns=netns
        )
    )
    summary = render_summary(result.verdict)
    cluster = result.verdict.cluster
    assert cluster is not None
    assert cluster.failovers >= 2, summary
    assert result.verdict.counts.ok > 100, summary  # real work between faults
    assert result.verdict.counts.reads > 0, summary
    assert cluster.acks_epoch_checked > 0, summary
    assert not result.unexpected_exits, summary
    assert result.verdict.ok, summary
    assert result.converged, summary
    for name in ("history.jsonl", "final.json", "roles.json", "rollback.json", "verdict.json"):
        assert (result.out_dir / name).is_file()
    assert json.loads((result.out_dir / "verdict.json").read_text())["ok"] is True

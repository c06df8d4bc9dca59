"""A short fault run against a real local cluster: every fault kind, a fixed seed, a clean verdict.

Slow (about a minute) and multi-process; part of the default suite and of CI (`-m "not chaos"` skips
it, and `-m "not slow"` skips it with every other multi-process test).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replog.chaos.report import render_summary
from replog.chaos.runner import RunConfig, run

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

SEED = 7
DURATION_S = 40.0


@pytest.mark.timeout(300)
def test_fault_run_is_clean(tmp_path: Path) -> None:
    result = run(
        RunConfig(out_dir=tmp_path / "run", duration_s=DURATION_S, seed=SEED, converge_timeout_s=60.0)
    )
    summary = render_summary(result.verdict)
    assert result.converged, summary
    assert not result.unexpected_exits, summary
    assert result.verdict.ok, summary
    counts = result.verdict.counts
    assert counts.ok > 100, summary  # the cluster did real work between faults
    assert counts.faults >= 7, summary  # one full round: every fault kind
    assert counts.read_only_observations > 0, summary  # quorum loss was seen by the master itself
    for name in ("history.jsonl", "final.json", "verdict.json"):
        assert (result.out_dir / name).is_file()
    assert json.loads((result.out_dir / "verdict.json").read_text())["ok"] is True

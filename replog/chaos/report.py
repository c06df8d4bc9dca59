"""Render a Verdict as a summary table and as JSON (kept apart from the checking logic)."""

from __future__ import annotations

from typing import Any

from replog.chaos.checker import Anomaly, Verdict

__all__ = ["render_summary", "verdict_to_dict"]


def _cluster_dict(verdict: Verdict) -> dict[str, Any] | None:
    k = verdict.cluster
    if k is None:
        return None
    return {
        "failovers": k.failovers,
        "masters": {str(epoch): list(nodes) for epoch, nodes in k.masters.items()},
        "ok_below_majority": k.ok_below_majority,
        "ok_below_majority_present": k.ok_below_majority_present,
        "ok_below_majority_rolled_back": k.ok_below_majority_rolled_back,
        "rolled_back_entries": dict(k.rolled_back_entries),
        "acks_epoch_checked": k.acks_epoch_checked,
    }


def verdict_to_dict(verdict: Verdict) -> dict[str, Any]:
    c = verdict.counts
    return {
        "ok": verdict.ok,
        "counts": {
            "invoked": c.invoked,
            "ok": c.ok,
            "fail": c.fail,
            "timeout": c.timeout,
            "timeout_recovered": c.timeout_recovered,
            "timeout_not_landed": c.timeout_not_landed,
            "pending": c.pending,
            "health_observations": c.health_observations,
            "read_only_observations": c.read_only_observations,
            "faults": c.faults,
            "reads": c.reads,
            "ok_by_w": {str(w): n for w, n in c.ok_by_w.items()},
            "node_entries": dict(c.node_entries),
        },
        "cluster": _cluster_dict(verdict),
        "anomalies": {
            kind.value: {"count": report.count, "examples": list(report.examples)}
            for kind, report in verdict.anomalies.items()
        },
    }


def render_summary(verdict: Verdict, examples_per_kind: int = 3) -> str:
    """A fixed-width table a human can read at the end of a run."""
    c = verdict.counts
    by_w = ", ".join(f"w={w}: {n}" for w, n in c.ok_by_w.items()) or "-"
    nodes = ", ".join(f"{node}: {n}" for node, n in c.node_entries.items()) or "-"
    rows = [
        ("operations invoked", str(c.invoked)),
        ("ok", f"{c.ok} ({by_w})"),
        ("fail (definite)", str(c.fail)),
        (
            "timeout",
            f"{c.timeout} ({c.timeout_recovered} recovered, {c.timeout_not_landed} not landed)",
        ),
        ("pending", str(c.pending)),
        (
            "health observations",
            f"{c.health_observations} ({c.read_only_observations} read-only)",
        ),
        ("faults injected", str(c.faults)),
        ("reads", str(c.reads)),
        ("final entries", nodes),
    ]
    if (k := verdict.cluster) is not None:
        rolled = ", ".join(f"{node}: {n}" for node, n in k.rolled_back_entries.items()) or "-"
        rows += [
            ("failovers", f"{k.failovers} (masters by epoch: {dict(k.masters)})"),
            (
                "ok with w < majority",
                f"{k.ok_below_majority} ({k.ok_below_majority_present} present, "
                f"{k.ok_below_majority_rolled_back} rolled back)",
            ),
            ("rollback file lines", rolled),
            ("acks epoch-checked", str(k.acks_epoch_checked)),
        ]
    width = max(len(label) for label, _ in rows + [(k.value, "") for k in Anomaly])
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    lines.append("-" * (width + 12))
    lines.append(f"{'anomaly':<{width}}  count")
    for kind in Anomaly:
        report = verdict.anomalies[kind]
        lines.append(f"{kind.value:<{width}}  {report.count}")
        lines.extend(f"{'':<{width}}    e.g. {ex}" for ex in report.examples[:examples_per_kind])
    lines.append("-" * (width + 12))
    lines.append(f"{'verdict':<{width}}  {'OK' if verdict.ok else 'ANOMALIES FOUND'}")
    return "\n".join(lines)

"""Prometheus metrics of one node (`NodeMetrics`) and the families read from its state at scrape time."""

from replog.metrics.registry import HistogramTotals, NodeMetrics

__all__ = ["HistogramTotals", "NodeMetrics"]

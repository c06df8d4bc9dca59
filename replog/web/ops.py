"""What operators see, on every node: `GET /metrics`, the live page at `GET /`, and its data.

- `GET /metrics`: Prometheus text format from the node's own registry (404 with `--no-metrics`).
- `GET /`: the live page (plain HTML, CSS and JavaScript from `static/`, nothing fetched from
  elsewhere) for a client that accepts text/html, such as a browser; for any other client, a
  small JSON index of the endpoints, so API clients keep getting JSON.
- `GET /ops/live`: everything the page polls for, in one answer: the node's snapshot (its
  /health), the per-second timeline, recent events, the latest entries and, on a secondary, where
  its batches come from.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import bottle
from prometheus_client.metrics_core import Metric

from replog.config import Faults, MasterConfig, SecondaryConfig
from replog.core.errors import ReplogError
from replog.metrics import NodeMetrics
from replog.metrics.families import master_families, node_families, secondary_families, store_families
from replog.metrics.registry import CONTENT_TYPE
from replog.service.live import LiveView, Totals
from replog.storage.datadir import LOG_FILE
from replog.storage.store import Store
from replog.web.common import json_errors
from replog.web.secondary import ReceiveStats

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
LATEST = 5  # entries shown on the page


class MetricsOff(ReplogError):
    status = 404
    code = "not_found"


def wants_html() -> bool:
    """A browser asks for text/html first; curl and API clients send */* or application/json."""
    accept = bottle.request.get_header("Accept", "")
    return "text/html" in accept


def add_ops_routes(
    app: bottle.Bottle,
    *,
    role: str | Callable[[], str],
    metrics: NodeMetrics,
    live: LiveView,
    describe: Callable[[], dict[str, Any]],
    store: Store,
    extra: Callable[[], dict[str, Any]] = dict,
) -> None:
    """`describe` is the node's /health; `extra` adds role-specific fields to /ops/live. `role` is
    fixed, or (cluster mode) read at each request: the page then follows the node's role."""

    def role_now() -> str:
        return role() if callable(role) else role

    @app.get("/")
    def index() -> Any:
        if wants_html():
            return _static("index.html")
        return {
            "name": metrics.node,
            "role": role_now(),
            "endpoints": {
                "/": "this index; the live cluster page for a browser (Accept: text/html)",
                "/health": "the node's state",
                "/messages": "the log (GET); append (POST, master)" if role_now() == "master" else "the log",
                "/entries": "the log with seqs",
                "/metrics": "Prometheus metrics",
                "/ops/live": "the live page's data: timeline, events, latest entries",
            },
        }

    @app.get("/static/<name:re:[a-z]+\\.(?:js|css|html)>")
    def static(name: str) -> Any:
        return _static(name)

    @app.get("/metrics")
    @json_errors
    def get_metrics() -> bytes:
        if not metrics.enabled:
            raise MetricsOff("metrics are turned off on this node (--no-metrics)")
        bottle.response.content_type = CONTENT_TYPE
        return metrics.exposition()

    @app.get("/ops/live")
    @json_errors
    def get_live() -> dict[str, Any]:
        health = describe()
        last = store.stored_seq
        latest = store.read(max(1, last - LATEST + 1), LATEST)
        return {
            "name": metrics.node,
            "role": role_now(),
            "metrics": metrics.enabled,
            "health": health,
            "latest": [{"seq": e.seq, "message": e.message} for e in reversed(latest) if e.visible],
            **live.snapshot(),
            **extra(),
        }


def _static(name: str) -> Any:
    return bottle.static_file(name, root=str(STATIC_DIR), headers={"Cache-Control": "no-cache"})


# wiring: what each role's metrics and live view read ---------------------------------------------------
Describe = Callable[[], dict[str, Any]]


def watch_master(config: MasterConfig, metrics: NodeMetrics, store: Store, health: Describe) -> LiveView:
    """Register the master's scrape-time families; return its (unstarted) live view."""
    data_dir = config.storage.data_dir

    def families() -> Iterable[Metric]:
        yield from store_families(store.stored_seq, _file_size(data_dir))
        snapshot = _snapshot(health, config.name)
        if snapshot is not None:
            yield from node_families(snapshot, "master")
            yield from master_families(snapshot)

    def totals() -> Totals | None:
        figures = metrics.append_totals()
        if figures is None:
            return None
        refused, latency = figures
        return Totals({"appends": latency.count, "refused": refused}, latency)

    metrics.watch(families)
    # The gate starts read-only with every secondary Unhealthy: the first Healthy is an event too.
    initial = {
        "role": "master",
        "read_only": True,
        "secondaries": [{"url": url, "status": "Unhealthy"} for url in config.secondaries],
    }
    return LiveView(config.name, health, totals, period_s=config.heartbeat_interval_s, initial=initial)


def watch_secondary(
    config: SecondaryConfig, metrics: NodeMetrics, store: Store, health: Describe, stats: ReceiveStats
) -> LiveView:
    """Register the secondary's scrape-time families; return its (unstarted) live view."""
    data_dir = config.storage.data_dir

    def families() -> Iterable[Metric]:
        yield from store_families(store.stored_seq, _file_size(data_dir))
        snapshot = health()
        yield from node_families(snapshot, "secondary")
        yield from secondary_families(snapshot, stats.batches)

    def totals() -> Totals:
        counts = stats.snapshot()
        return Totals(
            {"entries": counts["received_entries"], "duplicates": counts["duplicate_entries"],
             "batches": stats.batches}
        )  # fmt: skip

    metrics.watch(families)
    initial = {"role": "secondary", "log_id": None, "faults": asdict(Faults())}  # faults at start: an event
    return LiveView(config.name, health, totals, period_s=1.0, initial=initial)


def batches_from(stats: ReceiveStats) -> dict[str, Any]:
    """Where this secondary's batches come from: the master, as far as a secondary can tell."""
    last = stats.last_batch
    if last is None:
        return {"master": None}
    address, at = last
    return {"master": {"address": address, "seconds_since_batch": round(time.monotonic() - at, 3)}}


def _snapshot(health: Describe, node: str) -> dict[str, Any] | None:
    """The master's health for a scrape; a node shutting down or too busy to answer leaves the
    snapshot families out of this scrape rather than failing it."""
    try:
        return health()
    except ReplogError as exc:
        log.debug("scrape without the health snapshot node=%s error=%s", node, exc)
        return None


def _file_size(data_dir: Path | None) -> int | None:
    if data_dir is None:
        return None
    with contextlib.suppress(OSError):
        return os.stat(data_dir / LOG_FILE).st_size
    return None


def watch_cluster(
    name: str, data_dir: Path | None, metrics: NodeMetrics, store: Store, health: Describe, period_s: float
) -> LiveView:
    """Cluster mode: the families follow the role the node has at scrape time (its /health says)."""

    def families() -> Iterable[Metric]:
        yield from store_families(store.stored_seq, _file_size(data_dir))
        snapshot = _snapshot(health, name)
        if snapshot is not None:
            role = str(snapshot.get("role", "secondary"))
            yield from node_families(snapshot, role)
            if role == "master" and "waiting_writers" in snapshot:
                yield from master_families(snapshot)

    def totals() -> Totals | None:
        figures = metrics.append_totals()
        if figures is None:
            return None
        refused, latency = figures
        return Totals({"appends": latency.count, "refused": refused}, latency)

    metrics.watch(families)
    return LiveView(name, health, totals, period_s=period_s, initial={"role": "secondary"})

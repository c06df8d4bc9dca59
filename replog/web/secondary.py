"""The secondary's HTTP API: apply batches from the master, read, health, fault injection.

`POST /replicate` applies a batch idempotently and answers at once with the contiguous acked seq; it
never waits for a gap to fill. Fault injection is part of the node: a delay before applying a batch
and a random 500 after applying it (so the master resends and dedup is exercised).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import bottle

from replog.config import Faults, SecondaryConfig
from replog.core.errors import BadRequest, ReplogError
from replog.core.wire import parse_replicate
from replog.logs import node_logger
from replog.storage.store import Store
from replog.storage.watch import SeqWatch
from replog.web.common import JsonBottle, json_errors, read_json_body, require_secret, term_fields
from replog.web.follow import Followers
from replog.web.reads import add_read_routes


class InjectedFaultError(ReplogError):
    status = 500
    code = "injected_fault"


class FaultSwitch:
    """The node's current faults, changeable at runtime."""

    def __init__(self, node: str, faults: Faults, rng: random.Random) -> None:
        self._log = node_logger(__name__, node)
        self._lock = threading.Lock()
        self._faults, self._rng = faults, rng
        if faults != Faults():
            self._log.warning(
                "fault injection on delay_s=%s error_rate=%s", faults.delay_s, faults.error_rate
            )

    @property
    def current(self) -> Faults:
        return self._faults

    def update(self, changes: dict[str, Any]) -> Faults:
        fields = {"delay": "delay_s", "delay_s": "delay_s", "error_rate": "error_rate"}
        unknown = set(changes) - set(fields)
        if unknown:
            raise BadRequest(f"unknown fault settings {sorted(unknown)}; use delay, error_rate")
        values: dict[str, float] = {}
        for key, value in changes.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadRequest(f"'{key}' must be a number")
            values[fields[key]] = float(value)
        with self._lock:
            try:
                self._faults = replace(self._faults, **values)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            faults = self._faults
        self._log.warning(
            "fault injection changed delay_s=%s error_rate=%s", faults.delay_s, faults.error_rate
        )
        return faults

    def fail_now(self) -> bool:
        rate = self._faults.error_rate
        with self._lock:
            return rate > 0 and self._rng.random() < rate


class ReceiveStats:
    """Entries received since this process started, how many of them it already held, the non-empty
    batches applied, and where and when the last batch came from (the master, as far as we know)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received = self._duplicates = self.batches = 0
        self.last_batch: tuple[str, float] | None = None  # (remote address, time.monotonic())

    def count(self, received: int, duplicates: int, source: str = "") -> None:
        with self._lock:
            self._received += received
            self._duplicates += duplicates
            if received:
                self.batches += 1
                self.last_batch = (source, time.monotonic())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"received_entries": self._received, "duplicate_entries": self._duplicates}


def describe(
    config: SecondaryConfig, store: Store, faults: FaultSwitch, stats: ReceiveStats
) -> dict[str, Any]:
    """The secondary's /health."""
    storage = store.status()  # not ok: /replicate answers 503 and the master stops counting it
    return {
        "role": "secondary",
        "name": config.name,
        "acked_seq": store.stored_seq,
        "log_id": store.log_id,
        **term_fields(store),
        "storage": {"ok": storage.ok, "reason": storage.reason},
        "rolled_back_entries": store.rolled_back_entries,
        "faults": asdict(faults.current),
        **stats.snapshot(),
    }


def secondary_app(
    config: SecondaryConfig,
    store: Store,
    faults: FaultSwitch,
    stopping: threading.Event,
    stats: ReceiveStats | None = None,
    admit: Callable[[], None] | None = None,
    followers: Followers | None = None,
) -> bottle.Bottle:
    """`admit` (cluster mode) runs before a batch is read: it raises to refuse the caller (a master
    of a stale epoch); None in static mode, which follows whoever replicates to it."""
    app = JsonBottle()
    log = node_logger(__name__, config.name)
    stats = stats if stats is not None else ReceiveStats()

    @app.post("/replicate")
    @json_errors
    def replicate() -> dict[str, Any]:
        require_secret(config.cluster_secret)
        if admit is not None:
            admit()
        batch = parse_replicate(read_json_body(config.server.max_body_bytes))
        delay_s = faults.current.delay_s
        if delay_s > 0:
            stopping.wait(delay_s)  # injected delay; ends early only on shutdown
        before = store.stored_seq
        acked = store.apply(batch.log_id, batch.entries)
        duplicates = sum(1 for e in batch.entries if e.seq <= before)
        stats.count(len(batch.entries), duplicates, bottle.request.environ.get("REMOTE_ADDR", ""))
        if batch.entries:
            log.debug(  # per batch: DEBUG, so the default level costs nothing per request
                "applied seqs=%d..%d acked=%d new=%d",
                batch.entries[0].seq,
                batch.entries[-1].seq,
                acked,
                acked - before,
            )
        if faults.fail_now():
            log.warning("injected 500 after applying acked=%d", acked)
            raise InjectedFaultError("injected error after applying the batch", acked_seq=acked)
        return {"acked_seq": acked}

    @app.get("/health")
    @json_errors
    def health() -> dict[str, Any]:
        return describe(config, store, faults, stats)

    @app.get("/faults")
    @json_errors
    def get_faults() -> dict[str, Any]:
        return asdict(faults.current)

    @app.post("/faults")
    @json_errors
    def set_faults() -> dict[str, Any]:
        require_secret(config.cluster_secret)
        return asdict(faults.update(read_json_body(4096)))

    if followers is None:  # cluster mode: the app's own, closed when the node stops
        server = config.server
        watch = SeqWatch(lambda: store.stored_seq, name=config.name)
        store.add_watcher(watch.poke)
        followers = Followers(store, watch, server.max_followers, server.follow_keepalive_s)
        own = followers

        def close_at_stop() -> None:
            stopping.wait()
            own.close()

        threading.Thread(target=close_at_stop, name=f"followers-{config.name}", daemon=True).start()
    add_read_routes(app, store, max_streams=config.server.reserved_threads // 2, followers=followers)
    return app

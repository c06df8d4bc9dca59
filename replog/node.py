"""Wiring: a master or secondary node built from its config, started and stopped as one thing.

The CLI, `run_cluster.py`, the benchmark and in-process tests all run nodes through these classes.
"""

from __future__ import annotations

import functools
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from replog.config import MasterConfig, SecondaryConfig, ServerConfig, StorageConfig
from replog.core.errors import ShuttingDown
from replog.logs import node_logger
from replog.master_role import MasterRole
from replog.metrics import NodeMetrics
from replog.net.metered import metered
from replog.net.transport import HttpPeer, Transport
from replog.storage.disk import DEFAULT_SYNC, DiskStore
from replog.storage.store import MemoryStore, Store
from replog.storage.watch import SeqWatch
from replog.web.follow import Followers
from replog.web.master import master_app
from replog.web.ops import add_ops_routes, batches_from, watch_master, watch_secondary
from replog.web.secondary import FaultSwitch, ReceiveStats, secondary_app
from replog.web.secondary import describe as describe_secondary
from replog.web.server import HttpServer

TransportFactory = Callable[[str], Transport]


def open_store(storage: StorageConfig, new_log_id: str | None, metrics: NodeMetrics | None = None) -> Store:
    """A disk store when a data directory is configured, else a memory store."""
    if storage.data_dir is None:
        return MemoryStore(new_log_id, dedup=storage.dedup)
    return DiskStore.open(
        storage.data_dir,
        fsync=storage.fsync,
        fsync_interval_s=storage.fsync_interval_s,
        new_log_id=new_log_id,
        sync_fd=DEFAULT_SYNC if metrics is None else metrics.timed_fsync(DEFAULT_SYNC),
        cache_bytes=storage.cache_bytes,
        retry_s=storage.retry_s,
        dedup=storage.dedup,
    )


def followers_of(server: ServerConfig, store: Store, name: str) -> Followers:
    """The node's followers (streams, long polls, min_seq reads), woken through a `SeqWatch` the
    store pokes whatever role the node plays."""
    watch = SeqWatch(lambda: store.stored_seq, name=name)
    store.add_watcher(watch.poke)
    return Followers(store, watch, server.max_followers, server.follow_keepalive_s)


class MasterNode:
    def __init__(
        self,
        config: MasterConfig,
        *,
        store: Store | None = None,
        transports: TransportFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        heartbeat: bool = True,
    ) -> None:
        self.config = config
        self._log = node_logger(__name__, config.name)
        self.metrics = NodeMetrics(config.name, "master", enabled=config.metrics)
        new_log_id = uuid.uuid4().hex
        self.store = store if store is not None else open_store(config.storage, new_log_id, self.metrics)
        self._rng = rng or random.Random()
        self.fatal_reason: str | None = None  # set once, by the first fatal failure
        self._fatal_lock = threading.Lock()
        self._built = threading.Event()  # construction ended (either way): a fatal stop may begin
        self._stopping = False
        self._stopped = threading.Event()
        try:
            self._build(transports, clock, heartbeat)
        except BaseException:
            self._stopping = True  # nothing left for a fatal stop to do
            self._stopped.set()
            self._abandon()  # e.g. the port is taken: leave no actor thread keeping the process alive
            raise
        finally:
            self._built.set()

    def _build(
        self, transports: TransportFactory | None, clock: Callable[[], float], heartbeat: bool
    ) -> None:
        config = self.config
        self.live = watch_master(config, self.metrics, self.store, self.health)
        make = metered(transports or self._http_peer, self.metrics, self._acked_seq_dropped)
        self.role = MasterRole(
            config, self.store, self.metrics, make, clock=clock, rng=self._rng, fatal=self._fatal,
            heartbeat=heartbeat,
        )  # fmt: skip
        self.view, self.gate, self.links = self.role.view, self.role.gate, self.role.links
        self.monitor, self.appender = self.role.monitor, self.role.appender
        self.followers = followers_of(config.server, self.store, config.name)
        app = master_app(config, self.store, self.appender, self.health, self.followers)
        add_ops_routes(
            app, role="master", metrics=self.metrics, live=self.live, describe=self.health, store=self.store
        )
        self.server = HttpServer(app, config.server)
        self._log.info(
            "master ready port=%d secondaries=%s log_id=%s stored_seq=%d",
            self.server.port,
            ",".join(config.secondaries),
            self.store.log_id,
            self.store.stored_seq,
        )

    def _abandon(self) -> None:
        role = getattr(self, "role", None)
        if role is not None:
            role.stop()
        self.store.close()

    def _http_peer(self, url: str) -> Transport:
        link = self.config.link
        return HttpPeer(
            url,
            secret=self.config.cluster_secret,
            connect_timeout_s=link.connect_timeout_s,
            replicate_timeout_s=link.replicate_timeout_s,
            probe_timeout_s=link.probe_timeout_s,
        )

    def _fatal(self, reason: str) -> None:
        """Any thread (a link's, typically): a failure the node cannot work through, such as its own
        log failing to read. Logs it once and stops the node from a thread of its own, since `stop`
        waits for the very actor that reports. The CLI then exits non-zero."""
        with self._fatal_lock:
            if self.fatal_reason is not None:
                return
            self.fatal_reason = reason
        self._log.error("fatal error; stopping the node reason=%s", reason)
        threading.Thread(target=self._stop_after_fatal, name=f"fatal-stop-{self.config.name}").start()

    def _acked_seq_dropped(self, url: str, before: int, now: int) -> None:
        """A sender or prober thread: the secondary answered with a lower acked seq than before."""
        self.metrics.acked_seq_dropped(url)
        text = f"{url} restarted without its log: acked seq {before} -> {now}; resending from {now + 1}"
        self._log.warning("secondary lost entries secondary=%s acked_before=%d acked=%d", url, before, now)
        self.live.add("warning", "restart", text, url)

    def _stop_after_fatal(self) -> None:
        self._built.wait()
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.config.server.host}:{self.server.port}"

    def health(self) -> dict[str, Any]:
        """Asks every actor at once, then gathers; 503 while the node is shutting down."""
        role = getattr(self, "role", None)
        if role is None:  # a scrape during construction
            raise ShuttingDown("node is starting")
        health: dict[str, Any] = role.health()
        followers = getattr(self, "followers", None)
        health["followers"] = 0 if followers is None else followers.active
        return health

    def _stop_gate(self) -> None:
        """Fails every waiting writer with 503 shutting_down (their entries stay stored)."""
        self.role.stop_gate()

    def start(self) -> MasterNode:
        self.server.start()
        self.live.start()
        return self

    def stop(self) -> None:
        """Idempotent and safe from any thread; a second caller waits until the first is done."""
        with self._fatal_lock:
            first, self._stopping = not self._stopping, True
        if not first:
            self._stopped.wait()
            return
        try:
            self._log.info("master stopping")
            self.live.stop()
            followers = getattr(self, "followers", None)
            if followers is not None:
                followers.close()  # ends every stream and long poll, freeing their threads
            self.server.stop(drain=self._stop_gate)
            self.role.stop()
            self.store.close()
            self._log.info("master stopped")
        finally:
            self._stopped.set()


class SecondaryNode:
    fatal_reason: str | None = None  # a secondary's failures answer its requests; none stops it

    def __init__(
        self, config: SecondaryConfig, *, store: Store | None = None, rng: random.Random | None = None
    ) -> None:
        self.config = config
        self._log = node_logger(__name__, config.name)
        self.metrics = NodeMetrics(config.name, "secondary", enabled=config.metrics)
        self.store = store if store is not None else open_store(config.storage, None, self.metrics)
        self.faults = FaultSwitch(config.name, config.faults, rng or random.Random())
        self._stopping = threading.Event()
        stats = ReceiveStats()
        self.followers = followers_of(config.server, self.store, config.name)
        app = secondary_app(config, self.store, self.faults, self._stopping, stats, followers=self.followers)
        health = functools.partial(describe_secondary, config, self.store, self.faults, stats)
        self.live = watch_secondary(config, self.metrics, self.store, health, stats)
        add_ops_routes(
            app, role="secondary", metrics=self.metrics, live=self.live, describe=health, store=self.store,
            extra=functools.partial(batches_from, stats),
        )  # fmt: skip
        try:
            self.server = HttpServer(app, config.server)
        except BaseException:
            self.store.close()
            raise
        self._log.info(
            "secondary ready port=%d log_id=%s acked_seq=%d",
            self.server.port,
            self.store.log_id,
            self.store.stored_seq,
        )

    @property
    def url(self) -> str:
        return f"http://{self.config.server.host}:{self.server.port}"

    def start(self) -> SecondaryNode:
        self.server.start()
        self.live.start()
        return self

    def stop(self) -> None:
        self._log.info("secondary stopping")
        self.live.stop()
        self._stopping.set()
        self.followers.close()
        self.server.stop()
        self.store.close()
        self._log.info("secondary stopped")

"""Wiring: a master or secondary node built from its config, started and stopped as one thing.

The CLI, `run_cluster.py`, the benchmark and in-process tests all run nodes through these classes.
"""

from __future__ import annotations

import functools
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pykka

from replog.actors.gate import QuorumGate, QuorumView, Snapshot, StoreFailed
from replog.actors.heartbeat import Describe as DescribeHealth
from replog.actors.heartbeat import HeartbeatMonitor, Tick
from replog.actors.link import Describe as DescribeLink
from replog.actors.link import SecondaryLink, StoredSeqFanout, WakeSignal
from replog.actors.threads import Ticker, tell_quietly
from replog.config import MasterConfig, SecondaryConfig, ServerConfig, StorageConfig
from replog.core.errors import Overloaded, ShuttingDown
from replog.logs import node_logger
from replog.metrics import NodeMetrics
from replog.net.metered import metered
from replog.net.transport import HttpPeer, Transport
from replog.service.metered import MeteredAppender
from replog.storage.disk import DEFAULT_SYNC, DiskStore
from replog.storage.store import MemoryStore, StorageStatus, Store
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


def stored_listener(fanout: StoredSeqFanout, watch: SeqWatch) -> Callable[[int], None]:
    """The master store's listener (flusher thread): the gate and links first, then followers."""

    def stored(seq: int) -> None:
        fanout(seq)
        watch.poke(seq)

    return stored


def followers_of(server: ServerConfig, store: Store, watch: SeqWatch) -> Followers:
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
        self._ticker: Ticker | None = None
        self.links: dict[str, pykka.ActorRef[Any]] = {}
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
        self.view = QuorumView()
        self.gate = QuorumGate.start(config.name, config.secondaries, self.view)
        self.live = watch_master(config, self.metrics, self.store, self.health)
        make = metered(transports or self._http_peer, self.metrics, self._acked_seq_dropped)
        wakes: list[WakeSignal] = []
        for url in config.secondaries:
            wakes.append(WakeSignal())
            self.links[url] = SecondaryLink.start(
                config.name,
                url,
                self.store,
                make(url),
                self.gate,
                config.link,
                random.Random(self._rng.random()),
                wakes[-1],
                self._fatal,
            )
        self.monitor = HeartbeatMonitor.start(
            config.name,
            {url: make(url) for url in config.secondaries},
            self.links,
            self.gate,
            config.health,
            clock,
            log_id=self.store.log_id,
        )
        fanout = StoredSeqFanout(self.gate, wakes)  # the store's listener, on its flusher thread
        self.watch = SeqWatch(lambda: self.store.stored_seq, name=config.name)
        self.store.set_listener(stored_listener(fanout, self.watch))
        self.store.set_status_listener(self._storage_changed)
        if self.store.stored_seq:
            fanout(self.store.stored_seq)
        if heartbeat:
            self._ticker = Ticker(
                f"heartbeat-{config.name}",
                config.heartbeat_interval_s,
                lambda: tell_quietly(self.monitor, Tick()),
            )
        self.appender = MeteredAppender(config, self.store, self.gate, self.view, self.metrics)
        self.followers = followers_of(config.server, self.store, self.watch)
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
        if self._ticker is not None:
            self._ticker.stop()
        for name in ("monitor", "gate"):
            ref = getattr(self, name, None)
            if ref is not None:
                ref.stop()
        for ref in self.links.values():
            ref.stop()
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

    def _storage_changed(self, status: StorageStatus) -> None:
        """Store status listener: a failure dropped entries not yet durable; fail their writers."""
        if not status.ok:
            tell_quietly(self.gate, StoreFailed(status.generation, status.durable_seq, status.reason or ""))

    @property
    def url(self) -> str:
        return f"http://{self.config.server.host}:{self.server.port}"

    def health(self) -> dict[str, Any]:
        """Asks every actor at once, then gathers; 503 while the node is shutting down."""
        try:
            gate_future = self.gate.ask(Snapshot(), block=False)
            beats_future = self.monitor.ask(DescribeHealth(), block=False)
            link_futures = {url: link.ask(DescribeLink(), block=False) for url, link in self.links.items()}
            gate: dict[str, Any] = gate_future.get(timeout=2.0)
            beats: Mapping[str, dict[str, Any]] = beats_future.get(timeout=2.0)
            links: dict[str, dict[str, Any]] = {url: f.get(timeout=2.0) for url, f in link_futures.items()}
        except pykka.ActorDeadError:
            raise ShuttingDown("node is shutting down") from None
        except pykka.Timeout:
            raise Overloaded("the node's actors did not answer within 2 s", retry_after_s=1) from None
        stored = self.store.stored_seq
        storage = self.store.status()
        secondaries = [
            {
                "url": url,
                **beats[url],
                **state,
                # The last probe may predate the batch that made the secondary adopt our log id.
                "log_id": beats[url]["log_id"] or state["log_id"],
                "lag": max(0, stored - state["acked_seq"]),
            }
            for url, state in links.items()
        ]
        return {
            "role": "master",
            "name": self.config.name,
            "log_id": self.store.log_id,
            "read_only": gate["read_only"] or not storage.ok,
            "storage": {"ok": storage.ok, "reason": storage.reason},
            "quorum": gate["quorum"],
            "last_seq": stored,
            "rolled_back_entries": self.store.rolled_back_entries,
            "waiting_writers": gate["waiting_writers"],
            "followers": self.followers.active,
            "secondaries": secondaries,
        }

    def _stop_gate(self) -> None:
        """Fails every waiting writer with 503 shutting_down (their entries stay stored)."""
        self.gate.stop()

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
            if self._ticker is not None:
                self._ticker.stop()
            self.followers.close()  # ends every stream and long poll, freeing their threads
            self.server.stop(drain=self._stop_gate)
            for ref in [self.monitor, *self.links.values()]:
                ref.stop()
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
        self.watch = SeqWatch(lambda: self.store.stored_seq, name=config.name)
        self.store.set_listener(self.watch.poke)  # a secondary's store has no other listener
        self.followers = followers_of(config.server, self.store, self.watch)
        app = secondary_app(config, self.store, self.faults, self._stopping, stats, self.followers)
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

"""Wiring: a master or secondary node built from its config, started and stopped as one thing.

The CLI, `run_cluster.py`, the benchmark and in-process tests all run nodes through these classes.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pykka

from replog.actors.gate import MasterStored, QuorumGate, QuorumView, Snapshot, StoreFailed
from replog.actors.heartbeat import Describe as DescribeHealth
from replog.actors.heartbeat import HeartbeatMonitor, Tick
from replog.actors.link import Describe as DescribeLink
from replog.actors.link import SecondaryLink, WakeSignal
from replog.actors.threads import Ticker, tell_quietly
from replog.config import MasterConfig, SecondaryConfig, StorageConfig
from replog.core.errors import Overloaded, ShuttingDown
from replog.logs import node_logger
from replog.net.transport import HttpPeer, Transport
from replog.service.append import Appender
from replog.storage.disk import DiskStore
from replog.storage.store import MemoryStore, StorageStatus, Store
from replog.web.master import master_app
from replog.web.secondary import FaultSwitch, secondary_app
from replog.web.server import HttpServer

TransportFactory = Callable[[str], Transport]


def open_store(storage: StorageConfig, new_log_id: str | None) -> Store:
    """A disk store when a data directory is configured, else a memory store."""
    if storage.data_dir is None:
        return MemoryStore(new_log_id)
    return DiskStore.open(
        storage.data_dir,
        fsync=storage.fsync,
        fsync_interval_s=storage.fsync_interval_s,
        new_log_id=new_log_id,
        cache_bytes=storage.cache_bytes,
        retry_s=storage.retry_s,
    )


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
        self.store = store if store is not None else open_store(config.storage, uuid.uuid4().hex)
        self._rng = rng or random.Random()
        self._ticker: Ticker | None = None
        self.links: dict[str, pykka.ActorRef[Any]] = {}
        try:
            self._build(transports, clock, heartbeat)
        except BaseException:
            self._abandon()  # e.g. the port is taken: leave no actor thread keeping the process alive
            raise

    def _build(
        self, transports: TransportFactory | None, clock: Callable[[], float], heartbeat: bool
    ) -> None:
        config = self.config
        self.view = QuorumView()
        self.gate = QuorumGate.start(config.name, config.secondaries, self.view)
        make = transports or self._http_peer
        self._wakers: list[WakeSignal] = []
        for url in config.secondaries:
            wake = WakeSignal()
            self.links[url] = SecondaryLink.start(
                config.name,
                url,
                self.store,
                make(url),
                self.gate,
                config.link,
                random.Random(self._rng.random()),
                wake,
            )
            wake.bind(self.links[url])
            self._wakers.append(wake)
        self.monitor = HeartbeatMonitor.start(
            config.name,
            {url: make(url) for url in config.secondaries},
            self.links,
            self.gate,
            config.health,
            clock,
            log_id=self.store.log_id,
        )
        self.store.set_listener(self._stored)
        self.store.set_status_listener(self._storage_changed)
        if self.store.stored_seq:
            self._stored(self.store.stored_seq)
        if heartbeat:
            self._ticker = Ticker(
                f"heartbeat-{config.name}",
                config.heartbeat_interval_s,
                lambda: tell_quietly(self.monitor, Tick()),
            )
        self.appender = Appender(config, self.store, self.gate, self.view)
        self.server = HttpServer(master_app(config, self.store, self.appender, self.health), config.server)
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

    def _stored(self, seq: int) -> None:
        """Store listener: the master holds seq; count it toward w and let the links send it."""
        tell_quietly(self.gate, MasterStored(seq))
        for wake in self._wakers:
            wake()

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
            {"url": url, **beats[url], **state, "lag": max(0, stored - state["acked_seq"])}
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
            "secondaries": secondaries,
        }

    def _stop_gate(self) -> None:
        """Fails every waiting writer with 503 shutting_down (their entries stay stored)."""
        self.gate.stop()

    def start(self) -> MasterNode:
        self.server.start()
        return self

    def stop(self) -> None:
        self._log.info("master stopping")
        if self._ticker is not None:
            self._ticker.stop()
        self.server.stop(drain=self._stop_gate)
        for ref in [self.monitor, *self.links.values()]:
            ref.stop()
        self.store.close()
        self._log.info("master stopped")


class SecondaryNode:
    def __init__(
        self, config: SecondaryConfig, *, store: Store | None = None, rng: random.Random | None = None
    ) -> None:
        self.config = config
        self._log = node_logger(__name__, config.name)
        self.store = store if store is not None else open_store(config.storage, None)
        self.faults = FaultSwitch(config.name, config.faults, rng or random.Random())
        self._stopping = threading.Event()
        app = secondary_app(config, self.store, self.faults, self._stopping)
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
        return self

    def stop(self) -> None:
        self._log.info("secondary stopping")
        self._stopping.set()
        self.server.stop()
        self.store.close()
        self._log.info("secondary stopped")

"""The master's machinery without its server: quorum gate, a link per secondary, heartbeat monitor,
the store's listeners and the appender, started and stopped as one thing.

Shared by the static `MasterNode` (one role for the node's whole life) and the cluster-mode node,
which starts a role each time it wins an epoch and stops it when it steps down. A role serves one
epoch: its transports carry that epoch, its gate counts only the acks its own links gathered, and
its appender is fenced to that epoch in the store (`Store.append(epoch=...)`), so a deposed role can
neither append nor count an ack of another epoch (FAILOVER.md §4).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pykka

from replog.actors.gate import QuorumGate, QuorumView, Snapshot, StoreFailed
from replog.actors.heartbeat import Describe as DescribeHealth
from replog.actors.heartbeat import HeartbeatMonitor, Tick
from replog.actors.link import Describe as DescribeLink
from replog.actors.link import Disproved, SecondaryLink, StoredSeqFanout, WakeSignal
from replog.actors.threads import Ticker, tell_quietly
from replog.config import MasterConfig
from replog.core.errors import Overloaded, ShuttingDown
from replog.metrics import NodeMetrics
from replog.net.transport import Transport
from replog.service.catchup import CatchUp
from replog.service.metered import MeteredAppender
from replog.storage.store import StorageStatus, Store
from replog.web.common import term_fields

TransportFactory = Callable[[str], Transport]


def _ignore_stored(_seq: int) -> None:
    """The store's listener once a role stopped: nobody counts or replicates for it any more."""


def _ignore_status(_status: StorageStatus) -> None:
    pass


class LeasedView(QuorumView):
    """Cluster mode's read-only flag: the gate's quorum, and the lease (`net.fenced.Lease`): a
    master that heard from no majority within the minimum election timeout takes no writes."""

    def __init__(self, lease_valid: Callable[[], bool]) -> None:
        super().__init__()
        self._lease_valid = lease_valid

    @property
    def read_only(self) -> bool:
        return super().read_only or not self._lease_valid()

    def lease_valid(self) -> bool:
        return self._lease_valid()


class MasterRole:
    """Everything a master runs besides its HTTP server. Built started; `stop` is idempotent.

    `make_transport` gives each secondary's transport (the link's and the heartbeat's);
    `view` is the read-only flag the gate publishes and the appender reads (cluster mode passes
    one that also honours the lease); `epoch` fences appends (None: static mode)."""

    def __init__(
        self,
        config: MasterConfig,
        store: Store,
        metrics: NodeMetrics,
        make_transport: TransportFactory,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        fatal: Callable[[str], None],
        heartbeat: bool = True,
        view: QuorumView | None = None,
        epoch: int | None = None,
    ) -> None:
        self.config, self.store, self.epoch = config, store, epoch
        self.links: dict[str, pykka.ActorRef[Any]] = {}
        self._ticker: Ticker | None = None
        self._stop_lock = threading.Lock()
        self._stopped = False
        self.deposed = False  # cluster mode: set before `stop` when the node stepped down
        self.view = view if view is not None else QuorumView()
        try:
            self._build(metrics, make_transport, clock, rng, fatal, heartbeat)
        except BaseException:
            self.stop()
            raise

    def _build(
        self,
        metrics: NodeMetrics,
        make: TransportFactory,
        clock: Callable[[], float],
        rng: random.Random,
        fatal: Callable[[str], None],
        heartbeat: bool,
    ) -> None:
        config = self.config
        self.gate = QuorumGate.start(config.name, config.secondaries, self.view)
        # A master behind its secondaries learns what it lost from them (issue 11 C8).
        self.catchup = CatchUp(config.name, self.store, make, on_disproved=self._disproved)
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
                random.Random(rng.random()),
                wakes[-1],
                fatal,
                self.catchup.behind,
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
        self.store.set_listener(fanout)
        self.store.set_status_listener(self._storage_changed)
        if self.store.stored_seq:
            fanout(self.store.stored_seq)
        if heartbeat:
            self._ticker = Ticker(
                f"heartbeat-{config.name}",
                config.heartbeat_interval_s,
                lambda: tell_quietly(self.monitor, Tick()),
            )
        self.appender = MeteredAppender(config, self.store, self.gate, self.view, metrics, epoch=self.epoch)

    def lease_valid(self) -> bool:
        """Cluster mode: whether the lease still holds (always, in static mode: no lease)."""
        return not isinstance(self.view, LeasedView) or self.view.lease_valid()

    def _disproved(self, url: str, claim: int, reason: str) -> None:
        """The catch-up worker: `url` claims entries it does not serve; its link calls it a conflict."""
        link = self.links.get(url)
        if link is not None:
            tell_quietly(link, Disproved(claim, reason))

    def _storage_changed(self, status: StorageStatus) -> None:
        """Store status listener: a failure dropped entries not yet durable; fail their writers."""
        if not status.ok:
            tell_quietly(self.gate, StoreFailed(status.generation, status.durable_seq, status.reason or ""))

    def health(self) -> dict[str, Any]:
        """The master's /health: asks every actor at once, then gathers; 503 while stopping."""
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
            **term_fields(self.store),
            "read_only": gate["read_only"] or self.view.read_only or not storage.ok,
            "read_only_reason": (storage.reason and f"storage: {storage.reason}") or gate["read_only_reason"],
            "catch_up": self.catchup.describe(),
            "storage": {"ok": storage.ok, "reason": storage.reason},
            "quorum": gate["quorum"],
            "last_seq": stored,
            "rolled_back_entries": self.store.rolled_back_entries,
            "waiting_writers": gate["waiting_writers"],
            "secondaries": secondaries,
        }

    def stop_gate(self) -> None:
        """Fails every waiting writer with 503 shutting_down (their entries stay stored)."""
        gate = getattr(self, "gate", None)
        if gate is not None:
            gate.stop()

    def stop(self, *, detach: bool = False) -> None:
        """Stop the ticker, the gate (failing its waiters), the monitor and the links. `detach`:
        the store outlives the role (cluster mode), so its listeners are taken back first."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        if detach:
            self.store.set_listener(_ignore_stored)
            self.store.set_status_listener(_ignore_status)
        if self._ticker is not None:
            self._ticker.stop()
        catchup = getattr(self, "catchup", None)
        if catchup is not None:
            catchup.stop()
        self.stop_gate()
        monitor = getattr(self, "monitor", None)
        for ref in [monitor, *self.links.values()]:
            if ref is not None:
                ref.stop()

"""The role switch of a cluster-mode node: starts a `MasterRole` when the node wins an epoch and
stops it when the node steps down, one change at a time, in the order the election decided them.

The election actor calls `became_master` and `stepped_down` on its own thread, which must never
block; starting and stopping actors does, so each change is a job on the switch's one thread.

- Winning epoch E: the epoch-start control record is appended first (fenced to E: if the node
  moved on meanwhile, nothing is written and nothing starts), then a role whose transports carry
  E and report answered sends to the role's lease and a newer epoch to the election
  (`net.fenced`); its links count a member's ack only as far as their batches proved it by log
  matching (`core.replication`), all in this role's epoch.
- Stepping down: the role is marked deposed (its waiting writers hear `master_changed`) and
  stopped, the store's listeners taken back.
- Every (epoch, role, master) change is one fsynced line of roles.jsonl, written on this thread only.
"""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable

from replog.actors.threads import Worker
from replog.cluster.transports import TermTransports
from replog.config import ClusterConfig
from replog.core.election import ElectionConfig
from replog.core.entry import NewEntry
from replog.core.errors import ReplogError
from replog.logs import node_logger
from replog.master_role import LeasedView, MasterRole
from replog.metrics import NodeMetrics
from replog.net.fenced import FencedTransport, Lease
from replog.net.metered import metered
from replog.net.transport import Transport
from replog.storage.roles import RoleLog
from replog.storage.store import Store


class RoleSwitch:
    """The election's `RoleListener` for one node, and the holder of its current master role."""

    def __init__(
        self,
        config: ClusterConfig,
        election: ElectionConfig,
        store: Store,
        metrics: NodeMetrics,
        transports: TermTransports,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        fatal: Callable[[str], None],
        saw_epoch: Callable[[int], None],
    ) -> None:
        self._config, self._election, self._store, self._metrics = config, election, store, metrics
        self._transports, self._clock, self._rng = transports, clock, rng
        self._fatal, self._saw_epoch = fatal, saw_epoch
        self._log = node_logger(__name__, config.name)
        self.roles = RoleLog(config.storage.data_dir)
        self._lock = threading.Lock()  # guards _role, _closed and _known; no I/O under it
        self._role: MasterRole | None = None
        self._closed = False
        self._known: tuple[int, str, str | None] = (0, "", None)  # the last (epoch, role, master) recorded
        self._worker = Worker(f"roles-{config.name}")

    @property
    def role(self) -> MasterRole | None:
        """The master role while this node is master (any thread: one attribute read)."""
        return self._role

    # -- the election's role listener (the election actor's thread: never block) ------------------------
    def became_master(self, epoch: int) -> None:
        self._worker.submit(functools.partial(self._become_master, epoch))

    def stepped_down(self, epoch: int, master: str | None) -> None:
        self._worker.submit(functools.partial(self._step_down, epoch, master))

    def learned(self, epoch: int, master: str) -> None:
        """A request thread accepted a call of `master` in `epoch`: recorded if it is news."""
        with self._lock:
            news = self._known != (epoch, "secondary", master)
        if news:
            self._worker.submit(functools.partial(self._record, epoch, "secondary", master))

    def started(self, epoch: int) -> None:
        """The node started: its first line says where it stands."""
        self._worker.submit(functools.partial(self._record, epoch, "secondary", None))

    # -- the switch's thread ------------------------------------------------------------------------------
    def _become_master(self, epoch: int) -> None:
        if self._closed:
            return
        try:  # the epoch-start record first: everything before it commits once it is on a majority
            start = self._store.append([NewEntry.epoch_start()], epoch=epoch)
        except ReplogError as exc:  # the epoch moved on (a StepDown is queued) or the disk fails
            self._log.warning("cannot start master role epoch=%d error=%s", epoch, exc)
            return
        lease = Lease(self._election, self._clock)

        def make(url: str) -> Transport:
            inner = self._transports(url, epoch)
            return FencedTransport(inner, url, lease, self._clock, self._saw_epoch)

        transports = metered(make, self._metrics, self._acked_seq_dropped)
        role = MasterRole(
            self._config.master, self._store, self._metrics, transports,
            clock=self._clock, rng=self._rng, fatal=self._fatal, view=LeasedView(lease.valid), epoch=epoch,
        )  # fmt: skip
        if not self._still_in(epoch):
            role.stop(detach=True)
            return
        # roles.jsonl says "master" before the role can answer any write: the fault run's checker
        # compares every 201 with it, and a kill -9 in between must not leave a 201 it cannot place.
        self._record(epoch, "master", self._config.me)
        with self._lock:
            stale = not self._still_in_locked(epoch)
            if not stale:
                self._role = role
        if stale:
            role.stop(detach=True)
            return
        self._log.warning("master role started epoch=%d epoch_start_seq=%d", epoch, start[0].seq)

    def _still_in(self, epoch: int) -> bool:
        with self._lock:
            return self._still_in_locked(epoch)

    def _still_in_locked(self, epoch: int) -> bool:
        """Not closed, and the store has not moved past `epoch` (a StepDown may be queued)."""
        return not self._closed and self._store.epoch == epoch

    def _step_down(self, epoch: int, master: str | None) -> None:
        with self._lock:
            role, self._role = self._role, None
        if role is not None:
            role.deposed = True  # its waiting writers hear master_changed, not shutting_down
            role.stop(detach=True)
            self._log.warning("master role stopped epoch=%d new_master=%s", role.epoch, master)
        self._record(epoch, "secondary", master)

    def _record(self, epoch: int, role: str, master: str | None) -> None:
        """One roles.jsonl line per change, and the master-change count."""
        with self._lock:
            known, self._known = self._known, (epoch, role, master)
        if known == (epoch, role, master):
            return
        if master is not None and master != known[2]:
            self._metrics.master_changed()
        self.roles.record(epoch, role, master)

    def _acked_seq_dropped(self, url: str, before: int, now: int) -> None:
        self._metrics.acked_seq_dropped(url)
        self._log.warning("member lost entries member=%s acked_before=%d acked=%d", url, before, now)

    # -- lifecycle ------------------------------------------------------------------------------------------
    def stop_gate(self) -> None:
        """While the server drains: fail the writers waiting on the master role, if any."""
        role = self._role
        if role is not None:
            role.stop_gate()

    def close(self, timeout_s: float) -> bool:
        """After the election stopped (no more changes come): let queued changes end, then stop the
        role. False if a change did not end within `timeout_s`."""
        with self._lock:
            self._closed = True
        done = threading.Event()
        self._worker.submit(done.set)
        ended = done.wait(timeout_s)
        self._worker.stop()
        with self._lock:
            role, self._role = self._role, None
        if role is not None:
            role.stop(detach=True)
        return ended

"""Faults of a cluster-mode run: on the current master (found through /health when the fault
starts) and on the others, in seeded shuffled rounds, one at a time with quiet gaps between.

Master faults force failovers: kill -9 then restart; SIGSTOP for longer than the election timeout
then SIGCONT (the zombie master, which wakes up in an old epoch); a cut of the master from every
other node and every client (its network namespace's bridge port down), longer than the election
timeout, then healed. The others: kill -9, pause or cut one non-master, its own delay and 500s
through POST /faults, and quorum loss (both non-masters paused past the master's lease).
"""

from __future__ import annotations

import enum
import logging
import random
from dataclasses import dataclass

from replog.chaos.faults import post_faults
from replog.testing.cluster import LocalCluster
from replog.testing.netns import NetnsSwitch

__all__ = ["ClusterFault", "ClusterFaultKind", "ClusterInjector", "make_cluster_schedule"]

log = logging.getLogger(__name__)


class ClusterFaultKind(enum.Enum):
    MASTER_KILL = "master_kill"
    MASTER_PAUSE = "master_pause"  # longer than the election timeout: a zombie master on SIGCONT
    MASTER_CUT = "master_cut"  # master cut from everyone, longer than the election timeout
    KILL = "kill"  # one non-master, kill -9 then restart
    PAUSE = "pause"
    CUT = "cut"
    INJECT = "inject"  # one non-master's own delay and 500-after-apply
    QUORUM_LOSS = "quorum_loss"  # both non-masters paused past the master's lease

    @property
    def on_master(self) -> bool:
        return self in (
            ClusterFaultKind.MASTER_KILL,
            ClusterFaultKind.MASTER_PAUSE,
            ClusterFaultKind.MASTER_CUT,
        )

    @property
    def needs_cut(self) -> bool:
        return self in (ClusterFaultKind.MASTER_CUT, ClusterFaultKind.CUT)


@dataclass(frozen=True)
class ClusterFault:
    kind: ClusterFaultKind
    at_s: float  # offset from the start of the run
    duration_s: float
    delay_s: float = 0.0  # INJECT only
    error_rate: float = 0.0  # INJECT only

    def describe(self, targets: tuple[str, ...] = ()) -> str:
        who = ",".join(targets) or ("master" if self.kind.on_master else "non-master")
        return f"{self.kind.value} {who} at +{self.at_s:.1f}s for {self.duration_s:.1f}s"


# One round: four master faults (two kills) against five others, so that failovers repeat.
_ROUND = (
    ClusterFaultKind.MASTER_KILL,
    ClusterFaultKind.MASTER_PAUSE,
    ClusterFaultKind.MASTER_CUT,
    ClusterFaultKind.MASTER_KILL,
    ClusterFaultKind.KILL,
    ClusterFaultKind.PAUSE,
    ClusterFaultKind.CUT,
    ClusterFaultKind.INJECT,
    ClusterFaultKind.QUORUM_LOSS,
)


def _draw(
    kind: ClusterFaultKind, at_s: float, rng: random.Random, election_max_s: float, lease_s: float
) -> ClusterFault:
    if kind in (ClusterFaultKind.MASTER_PAUSE, ClusterFaultKind.MASTER_CUT):
        return ClusterFault(kind, at_s, election_max_s + rng.uniform(0.5, 2.0))
    if kind is ClusterFaultKind.QUORUM_LOSS:
        return ClusterFault(kind, at_s, lease_s + rng.uniform(1.0, 3.0))
    if kind is ClusterFaultKind.INJECT:
        delay = rng.choice((0.0, rng.uniform(0.0, 0.2)))
        return ClusterFault(
            kind, at_s, rng.uniform(2.0, 5.0), delay_s=delay, error_rate=rng.uniform(0.1, 0.5)
        )
    return ClusterFault(kind, at_s, rng.uniform(1.0, 4.0))


def make_cluster_schedule(
    rng: random.Random,
    duration_s: float,
    election_max_s: float,
    lease_s: float,
    *,
    cut: bool,
    warmup_s: float = 3.0,
    tail_s: float = 2.0,
) -> list[ClusterFault]:
    """Faults back to back with 1-2.5 s gaps (a master fault leaves 2-4 s, for the election), in
    shuffled rounds; without `cut` (no network namespaces) the cut faults are left out."""
    kinds = [k for k in _ROUND if cut or not k.needs_cut]
    faults: list[ClusterFault] = []
    pending: list[ClusterFaultKind] = []
    t = warmup_s
    while True:  # bounded: t grows by at least 1 s per fault
        if not pending:
            pending = list(kinds)
            rng.shuffle(pending)
        fault = _draw(pending.pop(), t, rng, election_max_s, lease_s)
        if t + fault.duration_s > duration_s - tail_s:
            return faults
        faults.append(fault)
        t += fault.duration_s + (rng.uniform(2.0, 4.0) if fault.kind.on_master else rng.uniform(1.0, 2.5))


class ClusterInjector:
    """Applies and heals cluster faults; finds the master when a fault starts."""

    def __init__(
        self,
        cluster: LocalCluster,
        netns: NetnsSwitch | None,
        rng: random.Random,
        *,
        find_master_s: float = 15.0,
        http_timeout_s: float = 2.0,
    ) -> None:
        self._cluster = cluster
        self._netns = netns
        self._rng = rng
        self._find_master_s = find_master_s
        self._timeout_s = http_timeout_s

    def _unreachable(self) -> tuple[str, ...]:
        return tuple(n for n in self._cluster.nodes if self._netns is not None and self._netns.is_cut(n))

    def targets(self, fault: ClusterFault) -> tuple[str, ...] | None:
        """The nodes `fault` hits now, or None when there is no master to aim at (skip it)."""
        try:
            master = self._cluster.current_master(self._find_master_s, exclude=self._unreachable())
        except TimeoutError:
            log.warning(
                "no writable master within %.0fs: fault skipped %s", self._find_master_s, fault.describe()
            )
            return None
        others = tuple(n for n in self._cluster.nodes if n != master)
        if fault.kind.on_master:
            return (master,)
        if fault.kind is ClusterFaultKind.QUORUM_LOSS:
            return others
        return (self._rng.choice(others),)

    def apply(self, fault: ClusterFault, targets: tuple[str, ...]) -> None:
        log.info("fault start %s", fault.describe(targets))
        for name in targets:
            self._switch(fault, name, start=True)

    def heal(self, fault: ClusterFault, targets: tuple[str, ...]) -> None:
        log.info("fault end %s", fault.describe(targets))
        for name in targets:
            self._switch(fault, name, start=False)

    def _switch(self, fault: ClusterFault, name: str, *, start: bool) -> None:
        """Start (or end) one fault on one node: each kind's pair of actions in one place."""
        kind, node = fault.kind, self._cluster.nodes[name]
        if kind in (ClusterFaultKind.MASTER_KILL, ClusterFaultKind.KILL):
            node.kill() if start else node.start()
        elif kind in (ClusterFaultKind.MASTER_PAUSE, ClusterFaultKind.PAUSE, ClusterFaultKind.QUORUM_LOSS):
            node.pause() if start else node.resume()
        elif kind.needs_cut and self._netns is not None:
            self._netns.cut(name) if start else self._netns.heal(name)
        elif kind is ClusterFaultKind.INJECT:
            if start:
                self.set_node_faults(name, fault.delay_s, fault.error_rate)
            else:
                self.set_node_faults(name, 0.0, 0.0, must=False)

    def heal_all(self) -> None:
        """Whatever the schedule left: every node up and reachable, no injected faults."""
        for name, node in self._cluster.nodes.items():
            node.resume()
            node.start()
            if self._netns is not None and self._netns.is_cut(name):
                self._netns.heal(name)
        for name in self._cluster.nodes:
            self.set_node_faults(name, 0.0, 0.0, must=False)

    def set_node_faults(self, name: str, delay_s: float, error_rate: float, must: bool = True) -> None:
        url = self._cluster.nodes[name].url
        post_faults(self._cluster, url, name, delay_s, error_rate, self._timeout_s, must=must)

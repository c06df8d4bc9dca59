"""The fault vocabulary, a seeded schedule of faults, and how each is applied and healed.

Faults run one at a time with quiet gaps between them, so every fault has a clean start and end
in the history and the cluster always has a way back to health.
"""

from __future__ import annotations

import enum
import logging
import random
from dataclasses import dataclass
from typing import Protocol

import requests

from replog.testing.cluster import LocalCluster

__all__ = [
    "Fault",
    "FaultInjector",
    "FaultKind",
    "LinkCut",
    "ProxyCut",
    "SigstopCut",
    "make_schedule",
]

log = logging.getLogger(__name__)


class FaultKind(enum.Enum):
    KILL = "kill"  # kill -9, then restart on the same data dir
    PAUSE = "pause"  # SIGSTOP, then SIGCONT
    PARTITION = "partition"  # cut the master<->secondary link
    INJECT = "inject"  # secondary's own delay and 500-after-apply, via POST /faults
    QUORUM_LOSS = "quorum_loss"  # both secondaries stopped longer than unhealthy-after


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    targets: tuple[str, ...]
    at_s: float  # offset from the start of the run
    duration_s: float
    delay_s: float = 0.0  # INJECT only
    error_rate: float = 0.0  # INJECT only

    @property
    def target(self) -> str:
        return ",".join(self.targets)

    def describe(self) -> str:
        extra = (
            f" delay={self.delay_s:.3f}s error_rate={self.error_rate:.2f}"
            if self.kind is FaultKind.INJECT
            else ""
        )
        return f"{self.kind.value} {self.target} at +{self.at_s:.1f}s for {self.duration_s:.1f}s{extra}"


# One round of the schedule: every kind, and kill/pause against both a secondary and the master.
_ROUND: tuple[tuple[FaultKind, bool], ...] = (
    (FaultKind.KILL, False),
    (FaultKind.KILL, True),
    (FaultKind.PAUSE, False),
    (FaultKind.PAUSE, True),
    (FaultKind.PARTITION, False),
    (FaultKind.INJECT, False),
    (FaultKind.QUORUM_LOSS, False),
)


def _draw(
    recipe: tuple[FaultKind, bool],
    at_s: float,
    rng: random.Random,
    secondaries: tuple[str, ...],
    unhealthy_after_s: float,
) -> Fault:
    kind, on_master = recipe
    one = "master" if on_master else rng.choice(secondaries)
    if kind is FaultKind.KILL:
        return Fault(kind, (one,), at_s, rng.uniform(1.0, 4.0))
    if kind is FaultKind.PAUSE:  # a paused master stalls every client: keep it short
        return Fault(kind, (one,), at_s, rng.uniform(0.5, 2.0) if on_master else rng.uniform(1.0, 4.0))
    if kind is FaultKind.PARTITION:
        return Fault(kind, (one,), at_s, rng.uniform(1.0, 4.0))
    if kind is FaultKind.QUORUM_LOSS:
        return Fault(kind, secondaries, at_s, unhealthy_after_s + rng.uniform(1.0, 3.0))
    return Fault(
        kind,
        (one,),
        at_s,
        rng.uniform(2.0, 5.0),
        delay_s=rng.choice((0.0, rng.uniform(0.0, 0.2))),
        error_rate=rng.uniform(0.1, 0.5),
    )


def make_schedule(
    rng: random.Random,
    duration_s: float,
    secondaries: tuple[str, ...],
    unhealthy_after_s: float,
    *,
    warmup_s: float = 2.0,
    tail_s: float = 2.0,
) -> list[Fault]:
    """Faults back to back with 1-3 s gaps, in shuffled rounds of every kind: a run of ~35 s or
    more sees each kind at least once, whatever the seed."""
    faults: list[Fault] = []
    recipes: list[tuple[FaultKind, bool]] = []
    t = warmup_s
    while True:
        if not recipes:
            recipes = list(_ROUND)
            rng.shuffle(recipes)
        fault = _draw(recipes.pop(), t, rng, secondaries, unhealthy_after_s)
        if t + fault.duration_s > duration_s - tail_s:
            return faults
        faults.append(fault)
        t += fault.duration_s + rng.uniform(1.0, 2.5)


class LinkCut(Protocol):
    """Cuts the master<->secondary link. Implementations: ProxyCut (a real link cut, both ends
    keep running) and SigstopCut (stops the secondary: cuts every link it has). A network-
    namespace cut (veth per node, `ip netns exec`, iptables DROP) would fit the same shape."""

    def cut(self, secondary: str) -> None: ...

    def heal(self, secondary: str) -> None: ...


class SigstopCut:
    def __init__(self, cluster: LocalCluster) -> None:
        self._cluster = cluster

    def cut(self, secondary: str) -> None:
        self._cluster.secondaries[secondary].pause()

    def heal(self, secondary: str) -> None:
        self._cluster.secondaries[secondary].resume()


class ProxyCut:
    def __init__(self, cluster: LocalCluster) -> None:
        if not cluster.proxies:
            raise ValueError("ProxyCut needs a cluster started with proxied links")
        self._cluster = cluster

    def cut(self, secondary: str) -> None:
        self._cluster.proxies[secondary].cut()

    def heal(self, secondary: str) -> None:
        self._cluster.proxies[secondary].heal()


class FaultInjector:
    """Applies and heals faults on a running cluster."""

    def __init__(
        self,
        cluster: LocalCluster,
        link_cut: LinkCut,
        baseline_error_rate: float = 0.0,
        http_timeout_s: float = 2.0,
    ) -> None:
        self._cluster = cluster
        self._cut = link_cut
        self._baseline = baseline_error_rate  # what the secondaries were started with
        self._timeout_s = http_timeout_s

    def apply(self, fault: Fault) -> None:
        log.info("fault start %s", fault.describe())
        nodes = self._cluster.nodes
        for target in fault.targets:
            if fault.kind is FaultKind.KILL:
                nodes[target].kill()
            elif fault.kind in (FaultKind.PAUSE, FaultKind.QUORUM_LOSS):
                nodes[target].pause()
            elif fault.kind is FaultKind.PARTITION:
                self._cut.cut(target)
            else:
                self.set_node_faults(target, fault.delay_s, fault.error_rate)

    def heal(self, fault: Fault) -> None:
        log.info("fault end %s", fault.describe())
        nodes = self._cluster.nodes
        for target in fault.targets:
            if fault.kind is FaultKind.KILL:
                nodes[target].start()
            elif fault.kind in (FaultKind.PAUSE, FaultKind.QUORUM_LOSS):
                nodes[target].resume()
            elif fault.kind is FaultKind.PARTITION:
                self._cut.heal(target)
            else:
                self.set_node_faults(target, 0.0, self._baseline)

    def heal_all(self) -> None:
        """Whatever state the schedule left behind: every node up, links whole, no injected
        faults (not even the baseline), so that catching up is quick."""
        for node in self._cluster.nodes.values():
            node.resume()
            node.start()
        for name in self._cluster.secondaries:
            self._cut.heal(name)
        for name in self._cluster.secondaries:
            self.set_node_faults(name, 0.0, 0.0, must=False)

    def set_node_faults(self, secondary: str, delay_s: float, error_rate: float, must: bool = True) -> None:
        node = self._cluster.secondaries[secondary]
        post_faults(self._cluster, node.url, secondary, delay_s, error_rate, self._timeout_s, must=must)


def post_faults(
    cluster: LocalCluster, url: str, name: str, delay_s: float, error_rate: float, timeout_s: float,
    *, must: bool = True,
) -> None:
    """`POST /faults` on one node (with the cluster secret, never through an environment's proxy).
    A refusal is logged, as a warning if the fault `must` apply, else (a reset at the end of a run,
    when the node may be down) at debug level."""
    try:
        with requests.Session() as session:
            session.trust_env = False
            resp = session.post(
                f"{url}/faults",
                json={"delay": delay_s, "error_rate": error_rate},
                headers=cluster.secret_headers(),
                timeout=timeout_s,
            )
            resp.raise_for_status()
    except requests.RequestException as exc:
        (log.warning if must else log.debug)("fault injection not applied node=%s error=%s", name, exc)

"""The heartbeat monitor: probes each secondary and runs its health state machine.

A ticker `tell`s `Tick`; each secondary has its own prober thread, so a paused node costs only its
own probe timeout. Status changes go to that secondary's link (to retry at once when Healthy) and to
the quorum gate. A probe also carries the secondary's acked seq, which the link takes as a hint
for where to check next, never as an ack (issue 11 C7: only a verified batch answer counts).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pykka

from replog.actors.base import ReplogActor
from replog.actors.gate import HealthChanged
from replog.actors.link import NodeStatus, Probed
from replog.actors.threads import Worker, event_stamp, tell_quietly
from replog.core import health
from replog.core.health import HealthPolicy, NodeHealth
from replog.logs import node_logger
from replog.net.transport import ProbeResult, Transport, TransportError


class Tick:
    """Time to probe every secondary that has no probe in flight."""


@dataclass(frozen=True, slots=True)
class ProbeDone:
    url: str
    asked_at: int  # event stamp taken before the probe was sent
    result: ProbeResult | None
    error: str | None = None


class Describe:
    """Ask for every secondary's health, for /health."""


@dataclass
class _Watched:
    transport: Transport
    link: pykka.ActorRef[Any]
    state: NodeHealth
    prober: Worker | None = None
    probing: bool = False
    log_id: str | None = None
    acked_seq: int | None = None
    problem: str | None = None  # the last probe's error


class HeartbeatMonitor(ReplogActor):
    def __init__(
        self,
        node: str,
        transports: Mapping[str, Transport],
        links: Mapping[str, pykka.ActorRef[Any]],
        gate: pykka.ActorRef[Any],
        policy: HealthPolicy,
        clock: Callable[[], float],
        log_id: str | None = None,
    ) -> None:
        """`log_id` is the master's: a secondary holding another log counts as failing its probes."""
        super().__init__()
        self._log_id = log_id
        self._log = node_logger(__name__, node)
        self._gate, self._policy, self._clock = gate, policy, clock
        now = clock()
        self._nodes = {
            url: _Watched(transports[url], links[url], NodeHealth.start(now)) for url in transports
        }

    def on_start(self) -> None:
        for url, watched in self._nodes.items():
            watched.prober = Worker(f"probe-{url}")

    def on_stop(self) -> None:
        for watched in self._nodes.values():
            if watched.prober is not None:
                watched.prober.stop()
            watched.transport.close()

    def handle(self, message: Any) -> Any:
        match message:
            case Tick():
                self._tick()
            case ProbeDone(url, asked_at, result, error):
                self._probe_done(url, asked_at, result, error)
            case Describe():
                return self._describe()
        return None

    def _tick(self) -> None:
        now = self._clock()
        for url, watched in self._nodes.items():
            self._set_state(url, watched, health.tick(watched.state, now, self._policy))
            if not watched.probing and watched.prober is not None:
                watched.probing = True
                watched.prober.submit(functools.partial(self._probe, url, watched.transport))

    def _probe(self, url: str, transport: Transport) -> None:
        """Runs on the prober thread."""
        asked_at = event_stamp()
        try:
            result = transport.probe()
        except TransportError as exc:
            tell_quietly(self.actor_ref, ProbeDone(url, asked_at, None, str(exc)))
        else:
            tell_quietly(self.actor_ref, ProbeDone(url, asked_at, result))

    def _probe_done(self, url: str, asked_at: int, result: ProbeResult | None, error: str | None) -> None:
        watched = self._nodes[url]
        watched.probing = False
        now = self._clock()
        if result is not None:
            watched.log_id = result.log_id
            if result.log_id not in (None, self._log_id):
                # Another cluster's log: reachable, but it can never hold our entries.
                error, result = f"log_id_mismatch: it holds log {result.log_id}, ours is {self._log_id}", None
        if result is not None and not result.storage_ok:
            # Issue 11 C6: a secondary whose disk fails answers, but stores and acks nothing new.
            # Count it as a failed probe, so it turns Unhealthy and stops counting toward quorum.
            error, result = f"storage_unavailable: {result.storage_reason}", None
            if error != watched.problem:
                self._log.warning("secondary cannot store: %s secondary=%s", error, url)
        if error != watched.problem and error is not None and error.startswith("log_id_mismatch"):
            self._log.error("secondary refused: %s secondary=%s", error, url)
        watched.problem = error
        if result is None:
            self._log.debug("probe failed secondary=%s error=%s", url, error)
            self._set_state(url, watched, health.probe_failed(watched.state, now, self._policy))
            return
        watched.acked_seq = result.acked_seq
        tell_quietly(watched.link, Probed(result.acked_seq, asked_at))  # before NodeStatus: retry from there
        self._set_state(url, watched, health.probe_ok(watched.state, now))

    def _set_state(self, url: str, watched: _Watched, new: NodeHealth) -> None:
        old, watched.state = watched.state, new
        if new.status is old.status:
            return
        log = self._log.info if new.status is health.Status.HEALTHY else self._log.warning
        log("secondary health changed secondary=%s from=%s to=%s", url, old.status.value, new.status.value)
        tell_quietly(watched.link, NodeStatus(new.status))
        tell_quietly(self._gate, HealthChanged(url, new.status))

    def _describe(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        return {
            url: {
                "status": w.state.status.value,
                "seconds_since_seen": w.state.seconds_since_seen(now),
                "log_id": w.log_id,
                "probe_error": w.problem,
            }
            for url, w in self._nodes.items()
        }

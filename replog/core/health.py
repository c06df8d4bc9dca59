"""Secondary health: Healthy -> Suspected -> Unhealthy, fed by probe results and `now`.

A node is Unhealthy until first heard from. A failed probe or `suspect_after_s` of silence makes a
Healthy node Suspected; `unhealthy_after_s` of silence makes it Unhealthy. Only a successful probe
makes it Healthy again. Each function returns a new state and never mutates its input.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class Status(enum.Enum):
    HEALTHY = "Healthy"
    SUSPECTED = "Suspected"
    UNHEALTHY = "Unhealthy"


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    suspect_after_s: float = 3.0
    unhealthy_after_s: float = 6.0

    def __post_init__(self) -> None:
        if not 0 < self.suspect_after_s <= self.unhealthy_after_s:
            raise ValueError("need 0 < suspect_after_s <= unhealthy_after_s")


@dataclass(frozen=True, slots=True)
class NodeHealth:
    status: Status
    since: float  # when the node was first watched or last seen, whichever is later
    last_seen: float | None = None
    failures: int = 0  # consecutive failed probes

    @classmethod
    def start(cls, now: float) -> NodeHealth:
        return cls(Status.UNHEALTHY, since=now)

    def seconds_since_seen(self, now: float) -> float | None:
        return None if self.last_seen is None else max(0.0, now - self.last_seen)


def probe_ok(state: NodeHealth, now: float) -> NodeHealth:
    return NodeHealth(Status.HEALTHY, since=now, last_seen=now, failures=0)


def probe_failed(state: NodeHealth, now: float, policy: HealthPolicy) -> NodeHealth:
    return tick(replace(state, failures=state.failures + 1), now, policy)


def tick(state: NodeHealth, now: float, policy: HealthPolicy) -> NodeHealth:
    """Degrade by silence; never improves a node (only `probe_ok` does)."""
    silence = now - state.since
    if state.status is Status.UNHEALTHY or silence >= policy.unhealthy_after_s:
        status = Status.UNHEALTHY
    elif state.failures > 0 or silence >= policy.suspect_after_s:
        status = Status.SUSPECTED
    else:
        status = Status.HEALTHY
    return state if status is state.status else replace(state, status=status)

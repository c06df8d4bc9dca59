"""Retry delays: capped exponential backoff with jitter, as one pure function."""

from __future__ import annotations

import random
from dataclasses import dataclass

from replog.core.health import Status


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    base_s: float = 0.05
    cap_s: float = 2.0

    def __post_init__(self) -> None:
        if not 0 <= self.base_s <= self.cap_s:
            raise ValueError("need 0 <= base_s <= cap_s")


def delay(attempt: int, status: Status, rng: random.Random, policy: BackoffPolicy) -> float:
    """Seconds to wait before retry number `attempt` (1-based).

    "Equal jitter": half the exponential step is fixed, half random, so retries never spin at zero
    delay yet many links do not retry in lockstep. An Unhealthy node waits the full cap: the heartbeat
    triggers an immediate retry the moment it sees the node Healthy again.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    if status is Status.UNHEALTHY:
        step = policy.cap_s
    else:
        step = min(policy.cap_s, policy.base_s * 2.0 ** min(attempt - 1, 62))
    return step / 2 + rng.uniform(0.0, step / 2)

"""Retry delays: capped exponential backoff with jitter, as one pure function.

It knows nothing of node health: whoever schedules the retry (the link's state machine) decides when
a wait should be the longest one (`full_cap`), for example for a node the heartbeat sees Unhealthy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    base_s: float = 0.05
    cap_s: float = 2.0

    def __post_init__(self) -> None:
        if not 0 <= self.base_s <= self.cap_s:
            raise ValueError("need 0 <= base_s <= cap_s")


def delay(attempt: int, rng: random.Random, policy: BackoffPolicy, *, full_cap: bool = False) -> float:
    """Seconds to wait before retry number `attempt` (1-based); `rng` is the only source of jitter.

    "Equal jitter": half the exponential step is fixed, half random, so retries never spin at zero
    delay yet many links do not retry in lockstep. `full_cap` makes the step the cap from the first
    attempt: for a wait that a faster retry cannot shorten (another event ends it early).
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    step = policy.cap_s if full_cap else min(policy.cap_s, policy.base_s * 2.0 ** min(attempt - 1, 62))
    return step / 2 + rng.uniform(0.0, step / 2)

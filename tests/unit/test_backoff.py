"""Retry delays: bounds, growth, the cap, the full-cap wait, determinism with a seeded rng."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

from replog.core import backoff
from replog.core.backoff import BackoffPolicy, delay

POLICY = BackoffPolicy(base_s=0.1, cap_s=3.0)


def step(attempt: int) -> float:
    return min(POLICY.cap_s, POLICY.base_s * 2.0 ** (attempt - 1))


def test_delay_stays_within_half_step_and_step() -> None:
    rng = random.Random(1)
    for attempt in range(1, 40):
        for _ in range(50):
            d = delay(attempt, rng, POLICY)
            assert step(attempt) / 2 <= d <= step(attempt)


def test_delay_grows_then_caps() -> None:
    lows = [delay(a, _Fixed(0.0), POLICY) for a in range(1, 10)]
    assert lows[:5] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8])
    assert lows[5:] == pytest.approx([1.5] * 4)
    highs = [delay(a, _Fixed(1.0), POLICY) for a in range(1, 10)]
    assert highs[:3] == pytest.approx([0.1, 0.2, 0.4])
    assert max(highs) == pytest.approx(POLICY.cap_s)


def test_huge_attempt_does_not_overflow() -> None:
    assert delay(10_000, random.Random(0), POLICY) <= POLICY.cap_s


def test_full_cap_waits_the_cap_from_the_first_attempt() -> None:
    rng = random.Random(2)
    for attempt in [1, 2, 5]:
        d = delay(attempt, rng, POLICY, full_cap=True)
        assert POLICY.cap_s / 2 <= d <= POLICY.cap_s
    assert delay(1, _Fixed(0.0), POLICY, full_cap=True) == pytest.approx(POLICY.cap_s / 2)


def test_backoff_knows_nothing_of_health() -> None:
    """Who waits how long for an unhealthy node is the link's decision, not the formula's."""
    tree = ast.parse(Path(backoff.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and "health" in m}, imported


def test_seeded_rng_gives_the_same_schedule() -> None:
    def schedule(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [delay(a, rng, POLICY) for a in range(1, 20)]

    assert schedule(7) == schedule(7)
    assert schedule(7) != schedule(8)


def test_zero_base_gives_zero_delay() -> None:
    assert delay(3, random.Random(0), BackoffPolicy(0.0, 0.0)) == 0.0


def test_attempt_is_one_based() -> None:
    with pytest.raises(ValueError):
        delay(0, random.Random(0), POLICY)


@pytest.mark.parametrize(("base", "cap"), [(-0.1, 1.0), (2.0, 1.0)])
def test_policy_is_validated(base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(base, cap)


class _Fixed(random.Random):
    """An rng whose uniform(a, b) is always at the same fraction of the range."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self._fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self._fraction

"""The quorum rule: writable iff the master plus non-Unhealthy secondaries are a majority."""

from __future__ import annotations

import pytest

from replog.core.health import Status
from replog.core.quorum import available_nodes, is_writable, majority

H, S, U = Status.HEALTHY, Status.SUSPECTED, Status.UNHEALTHY


@pytest.mark.parametrize(("nodes", "needed"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4)])
def test_majority(nodes: int, needed: int) -> None:
    assert majority(nodes) == needed


@pytest.mark.parametrize(
    ("statuses", "writable"),
    [
        ([H, H], True),
        ([H, U], True),
        ([U, H], True),
        ([S, U], True),  # a Suspected node still counts
        ([U, U], False),
    ],
)
def test_two_secondaries(statuses: list[Status], writable: bool) -> None:
    assert is_writable(statuses, node_count=3) is writable


@pytest.mark.parametrize(
    ("statuses", "writable"),
    [
        ([H, H, H], True),
        ([H, H, U], True),
        ([H, S, U], True),
        ([H, U, U], False),
        ([S, U, U], False),
        ([U, U, U], False),
    ],
)
def test_three_secondaries_need_three_of_four(statuses: list[Status], writable: bool) -> None:
    assert is_writable(statuses, node_count=4) is writable


def test_available_counts_the_master() -> None:
    assert available_nodes([]) == 1
    assert available_nodes([U, S, H]) == 3


def test_a_lone_master_is_writable() -> None:
    assert is_writable([], node_count=1)

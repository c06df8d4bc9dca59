"""The quorum rule: the master accepts appends only while a majority of nodes can hold them."""

from __future__ import annotations

from collections.abc import Iterable

from replog.core.health import Status


def majority(node_count: int) -> int:
    """More than half of node_count: the one definition, used by the quorum rule and by w="majority"."""
    return node_count // 2 + 1


def available_nodes(statuses: Iterable[Status]) -> int:
    """The master plus every secondary that is not Unhealthy."""
    return 1 + sum(1 for s in statuses if s is not Status.UNHEALTHY)


def is_writable(statuses: Iterable[Status], node_count: int) -> bool:
    return available_nodes(statuses) >= majority(node_count)

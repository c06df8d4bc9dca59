"""Shared fixtures: a polled condition with a deadline (never a bare sleep)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pytest

from replog.client import poll_until


class WaitFor(Protocol):
    def __call__(self, condition: Callable[[], Any], timeout_s: float = ..., what: str = ...) -> Any: ...


def wait_for(condition: Callable[[], Any], timeout_s: float = 5.0, what: str = "") -> Any:
    """Poll `condition` until it returns a truthy value (returned), or fail after `timeout_s`."""
    try:
        return poll_until(condition, timeout_s, 0.005, what or repr(condition))
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> WaitFor:
    return wait_for

"""The append path with its outcome and latency counted: an `Appender` that reports to `NodeMetrics`.

Kept apart from `append.py` so the append path reads without metrics in the way. Outcomes are "ok"
or the error code the client got; "error" is anything unexpected (a bug: the client got a 500).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pykka

from replog.actors.gate import QuorumView
from replog.config import MasterConfig
from replog.core.errors import ReplogError
from replog.core.wire import AppendRequest
from replog.metrics import NodeMetrics
from replog.service.append import Appender
from replog.storage.store import Store


class MeteredAppender(Appender):
    def __init__(
        self,
        config: MasterConfig,
        store: Store,
        gate: pykka.ActorRef[Any],
        view: QuorumView,
        metrics: NodeMetrics,
        *,
        epoch: int | None = None,
    ) -> None:
        super().__init__(config, store, gate, view, epoch=epoch)
        self._metrics = metrics

    def append(self, request: AppendRequest, hung_up: Callable[[], bool]) -> dict[str, Any]:
        """Runs on the request thread; the hook adds two locked additions to the append."""
        started = time.monotonic()
        outcome = "error"
        try:
            answer = super().append(request, hung_up)
            outcome = "ok"
            return answer
        except ReplogError as exc:
            outcome = exc.code
            raise
        finally:
            self._metrics.appended(request.w, outcome, time.monotonic() - started)

"""The base of replog's actors: a lighter mailbox, and handlers that never kill their actor."""

from __future__ import annotations

import queue
from typing import Any

import pykka
from pykka._actor import ActorInbox

from replog.logs import NodeLogger


class ReplogActor(pykka.ThreadingActor):
    """A pykka thread actor with a `queue.SimpleQueue` mailbox.

    pykka's default mailbox is a `queue.Queue` (three Conditions per put/get); `SimpleQueue` is a C
    deque with one lock, so every actor hop costs less GIL handoff on the hot path. An uncaught error
    in a told handler would stop a pykka actor, so `on_receive` logs it and carries on.
    """

    _log: NodeLogger

    @staticmethod
    def _create_actor_inbox() -> ActorInbox:
        inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        return inbox

    def on_receive(self, message: Any) -> Any:
        try:
            return self.handle(message)
        except Exception:
            self._log.exception("%s failed on message=%r", type(self).__name__, message)
            return None

    def handle(self, message: Any) -> Any:
        raise NotImplementedError

"""The base of replog's actors: a lighter mailbox, and handler errors that are never lost."""

from __future__ import annotations

from typing import Any

from replog.actors.pykka_adapter import MailboxActor
from replog.logs import NodeLogger


class ReplogActor(MailboxActor):
    """A pykka thread actor whose handler errors are logged, and reach the caller of an `ask`.

    An uncaught error in a told handler would stop a pykka actor, so `on_receive` logs it and carries
    on. An asked handler's error is logged too and then raised, so the caller's future raises it
    rather than answering None (pykka keeps the actor running in that case).
    """

    _log: NodeLogger

    def on_receive(self, message: Any) -> Any:
        try:
            return self.handle(message)
        except Exception:
            if self.answering():
                self._log.exception("%s failed answering message=%r", type(self).__name__, message)
                raise
            self._log.exception("%s failed on message=%r", type(self).__name__, message)
            return None

    def handle(self, message: Any) -> Any:
        raise NotImplementedError

"""Everything replog takes from pykka beyond its public API, in one place.

Two things, both checked by `tests/actors/test_pykka_adapter.py` so that a pykka release that changes
them fails loudly there (pyproject caps pykka below 5 for the same reason):

- the inbox hook: `ThreadingActor._create_actor_inbox` (documented as "internal, for implementors of
  new actor types") lets an actor use a `queue.SimpleQueue` instead of pykka's `queue.Queue`;
- the envelope: pykka puts `Envelope(message, reply_to)` in the inbox, `reply_to` being the future of
  an `ask` and None for a `tell`. The mailbox notes which kind the actor is handling, since pykka
  does not tell `on_receive`.
"""

from __future__ import annotations

import queue
from typing import TYPE_CHECKING, Any, cast

import pykka

if TYPE_CHECKING:
    from pykka._actor import ActorInbox


_simple_get = queue.SimpleQueue.get


class Mailbox(queue.SimpleQueue[Any]):
    """A SimpleQueue inbox: one lock and a C deque, against three Conditions per put/get for pykka's
    `queue.Queue`, so every actor hop costs less GIL hand-off on the hot path.

    `get` runs on the actor's own thread only, so `answering` describes the message being handled."""

    answering = False

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        envelope = _simple_get(self, block, timeout)  # not super(): ~0.2 us less per message
        self.answering = envelope.reply_to is not None
        return envelope


class MailboxActor(pykka.ThreadingActor):
    """A pykka thread actor whose inbox is a `Mailbox`."""

    @staticmethod
    def _create_actor_inbox() -> ActorInbox:
        return Mailbox()

    def answering(self) -> bool:
        """True while handling an `ask` (the caller waits on a future), False for a `tell`."""
        return cast(Mailbox, self.actor_inbox).answering

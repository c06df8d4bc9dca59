"""What replog takes from pykka beyond its public API: if a pykka release changes it, these fail.

See `replog/actors/pykka_adapter.py`; pyproject caps pykka below 5 for the same reason.
"""

from __future__ import annotations

import logging
import queue
from typing import Any

import pykka
import pytest

from replog.actors.base import ReplogActor
from replog.actors.pykka_adapter import Mailbox, MailboxActor
from replog.logs import node_logger


class Echo(ReplogActor):
    """Answers what it is asked; raises on "boom"; remembers what it was told."""

    def __init__(self) -> None:
        super().__init__()
        self._log = node_logger(__name__, "test")
        self.told: list[Any] = []
        self.kinds: list[bool] = []

    def handle(self, message: Any) -> Any:
        self.kinds.append(self.answering())
        if message == "boom":
            raise ValueError("handler failed")
        self.told.append(message)
        return message


def test_the_inbox_hook_exists_and_is_used() -> None:
    assert "_create_actor_inbox" in vars(pykka.Actor)
    assert "_create_actor_inbox" in vars(pykka.ThreadingActor)
    ref = Echo.start()
    assert type(ref.actor_inbox) is Mailbox
    assert isinstance(ref.actor_inbox, queue.SimpleQueue)  # the lighter queue, not pykka's queue.Queue
    assert ref.ask("ping", timeout=5.0) == "ping"  # and the actor loop really reads from it


def test_the_mailbox_tells_an_ask_from_a_tell() -> None:
    ref = Echo.start()
    ref.tell("told")
    assert ref.ask("asked", timeout=5.0) == "asked"
    assert ref.proxy().kinds.get(timeout=5.0)[:2] == [False, True]


def test_an_asked_handler_error_reaches_the_caller_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    ref = Echo.start()
    with caplog.at_level(logging.ERROR), pytest.raises(ValueError, match="handler failed"):
        ref.ask("boom", timeout=5.0)
    assert any("Echo failed answering message='boom'" in r.getMessage() for r in caplog.records)
    assert ref.ask("still here", timeout=5.0) == "still here"


def test_a_told_handler_error_is_logged_and_the_actor_survives(caplog: pytest.LogCaptureFixture) -> None:
    ref = Echo.start()
    with caplog.at_level(logging.ERROR):
        ref.tell("boom")
        assert ref.ask("after", timeout=5.0) == "after"
    assert any("Echo failed on message='boom'" in r.getMessage() for r in caplog.records)
    assert ref.is_alive()


def test_a_mailbox_actor_without_replog_handlers_uses_the_mailbox_too() -> None:
    class Plain(MailboxActor):
        def on_receive(self, message: Any) -> Any:
            return self.answering()

    ref = Plain.start()
    assert type(ref.actor_inbox) is Mailbox
    assert ref.ask("?", timeout=5.0) is True

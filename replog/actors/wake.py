"""Waking the links when the master stores entries: coalesced, from the store's flusher thread.

Threads: `WakeSignal.__call__` and `StoredSeqFanout.__call__` run on the store's flusher thread (or
on the thread that starts the node); `WakeSignal.taken` on the link actor's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pykka

from replog.actors.gate import MasterStored
from replog.actors.threads import tell_quietly
from replog.core.replication import LinkState


class Wake:
    """New entries are stored; send if idle."""


class WakeSignal:
    """Coalesces wake-ups: at most one `Wake` waits in the link's mailbox at any time, and none
    unless the link's state is idle (with a batch in flight or a retry pending, the link looks for
    new entries anyway when that ends). Every wake-up skipped is a thread switch saved on the append
    path. The in-flight truth is the state's own `idle`, never a copy: the store advances stored_seq
    before it signals, and the link leaves SENDING/BACKING_OFF before it reads stored_seq, so an
    entry is never left unseen."""

    def __init__(self) -> None:
        self._ref: pykka.ActorRef[Any] | None = None
        self._state: LinkState | None = None
        self._pending = threading.Event()

    def bind(self, ref: pykka.ActorRef[Any], state: LinkState) -> None:
        """Called once by the link it belongs to, before it handles any message."""
        self._ref, self._state = ref, state

    def __call__(self) -> None:
        """Runs on the store's flusher thread (or on the thread that starts the node)."""
        ref, state = self._ref, self._state
        if ref is not None and state is not None and state.idle and not self._pending.is_set():
            self._pending.set()
            tell_quietly(ref, Wake())

    def taken(self) -> None:
        """The link took the `Wake` out of its mailbox; it reads stored_seq only after this."""
        self._pending.clear()


class StoredSeqFanout:
    """The master store's listener: the master holds seq, so count it toward w and let every link
    send it. Runs on the store's flusher thread, after each group commit, in increasing seq order;
    it only `tell`s, so the flusher never waits for an actor."""

    def __init__(self, gate: pykka.ActorRef[Any], signals: Sequence[WakeSignal]) -> None:
        self._gate, self._signals = gate, tuple(signals)

    def __call__(self, seq: int) -> None:
        tell_quietly(self._gate, MasterStored(seq))
        for signal in self._signals:
            signal()

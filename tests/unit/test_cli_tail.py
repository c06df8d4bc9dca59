"""`replog tail -f` ends on Ctrl-C even when the interrupt is dropped by a finaliser."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from replog import cli_client
from replog.client import Client, Entry


def test_a_ctrl_c_swallowed_while_following_still_ends_tail_f(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def follow(self: Client, from_seq: int = 1, *, stop: Callable[[], bool] = lambda: False,
               **_: Any) -> Iterator[Entry]:
        for seq in range(from_seq, from_seq + 1000):
            if stop():
                return
            if seq == from_seq + 1:
                # what a finaliser does with an interrupt that lands in it: print and drop it
                with contextlib.suppress(KeyboardInterrupt):
                    os.kill(os.getpid(), signal.SIGINT)
            yield Entry(seq, f"m{seq}", 0.0)
        raise AssertionError("tail -f kept following after Ctrl-C")

    monkeypatch.setattr(Client, "follow", follow)
    monkeypatch.setattr(Client, "entries", lambda self, *a, **k: [])
    before = signal.getsignal(signal.SIGINT)
    code = cli_client.main(["tail", "-f", "--node", "http://127.0.0.1:9", "--from-seq", "5"])
    assert code == 130
    assert capsys.readouterr().out.splitlines()[:2] == ["5\tm5", "6\tm6"]
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back

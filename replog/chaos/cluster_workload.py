"""The clients of a cluster-mode fault run: writers through `replog.client` and readers.

A writer sends each append to the node that answered its last one (any node at first, or after an
error), and `ReplogClient` follows a 421 to the master it names. Outcomes are classified by what
they prove: a 201 is an ok, with the node that answered it; a 421 (after following), `read_only`,
`overloaded` or a refused connection stored nothing (fail); anything else may have landed
(timeout, with the seq when the answer names one: a 504, or 503 `master_changed`). The client
takes no idempotency key yet, so an outcome-unknown write is never retried (a retry could store
it twice): it stays unknown.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NewConnectionError

from replog.chaos.history import OpEvent, OpType, ReadEvent
from replog.chaos.workload import Recorder
from replog.client import ConnectionFailed, ReplogClient, ReplogHTTPError
from replog.core.errors import Overloaded, ReadOnly

__all__ = [
    "AnsweringClient",
    "ClusterReader",
    "ClusterWriter",
    "ClusterWriterConfig",
    "classify_error",
    "never_sent",
]

log = logging.getLogger(__name__)

_NOTHING_STORED = frozenset({ReadOnly.code, Overloaded.code})
NOT_MASTER_STATUS = 421


class AnsweringClient(ReplogClient):
    """A `ReplogClient` that remembers which node's answer it returned (after following a 421)."""

    answered: str | None = None

    def _send(
        self, method: str, url: str, timeout_s: float | None, **kwargs: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        parts = urlsplit(url)
        self.answered = None
        answer = super()._send(method, url, timeout_s, **kwargs)
        self.answered = f"{parts.scheme}://{parts.netloc}"
        return answer


def _opt_int(raw: object) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def never_sent(error: requests.RequestException | ConnectionFailed) -> bool:
    """Whether the request certainly never reached a node: the connection itself was refused or
    timed out (a dead or cut node). A reset or a read timeout after connecting may have landed.
    `replog.client` wraps the requests error in `ConnectionFailed` (judged by the one it wraps)."""
    if isinstance(error, ConnectionFailed):
        cause = error.__cause__
        return isinstance(cause, requests.RequestException) and never_sent(cause)
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError)


def classify_error(error: ReplogHTTPError) -> tuple[OpType, int | None]:
    """(outcome, seq) of a refused append: fail only where the contract says nothing was stored."""
    if error.status == NOT_MASTER_STATUS or (error.status == 503 and error.code in _NOTHING_STORED):
        return OpType.FAIL, None
    if 400 <= error.status < 500:
        return OpType.FAIL, None
    return OpType.TIMEOUT, _opt_int(error.body.get("seq", error.body.get("last_seq")))


@dataclass(frozen=True)
class ClusterWriterConfig:
    urls: Mapping[str, str]  # node name -> URL
    majority: int
    client_timeout_s: float = 10.0  # read timeout of one POST: past it the outcome is unknown
    # what is sent as w; "majority" and "all" are recorded as their numbers
    w_choices: tuple[int | str, ...] = (1, 1, 2, "majority", 3, "all")
    timeout_choices: tuple[float | None, ...] = (None, None, 0.5, 2.0)
    backoff_s: float = 0.05

    def w_number(self, w: int | str) -> int:
        if w == "majority":
            return self.majority
        if w == "all":
            return len(self.urls)
        return int(w)


class ClusterWriter(threading.Thread):
    """One client process: one append at a time, values `p<process>-<n>`."""

    def __init__(
        self,
        process: int,
        cfg: ClusterWriterConfig,
        rng: random.Random,
        recorder: Recorder,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"cluster-writer-{process}", daemon=True)
        self.process = process
        self._cfg = cfg
        self._rng = rng
        self._recorder = recorder
        self._stop_event = stop
        self._names = {url: name for name, url in cfg.urls.items()}
        self._clients = {
            url: AnsweringClient(url, request_timeout_s=cfg.client_timeout_s) for url in cfg.urls.values()
        }
        self._entry = rng.choice(sorted(self._clients))

    def run(self) -> None:
        n = 0
        try:
            while not self._stop_event.is_set():
                if not self._one(f"p{self.process}-{n}"):
                    self._entry = self._rng.choice(sorted(self._clients))
                    self._stop_event.wait(self._cfg.backoff_s)
                n += 1
        finally:
            for client in self._clients.values():
                client.close()

    def _one(self, value: str) -> bool:
        """Send one append; False when the writer should back off and try another node."""
        sent_w = self._rng.choice(self._cfg.w_choices)
        w = self._cfg.w_number(sent_w)
        wait_s = self._rng.choice(self._cfg.timeout_choices)
        client = self._clients[self._entry]
        record = self._recorder.record
        record(OpEvent(OpType.INVOKE, self.process, value, w, time.time()))
        try:
            answer = client.append(value, sent_w, timeout_s=wait_s)
        except ReplogHTTPError as exc:
            outcome, seq = classify_error(exc)
            node = self._names.get(client.answered or "")
            record(
                OpEvent(outcome, self.process, value, w, time.time(), seq=seq, status=exc.status, node=node)
            )
            log.debug("append refused value=%s status=%d error=%s", value, exc.status, exc.code)
            return False
        except (requests.RequestException, ConnectionFailed) as exc:  # the client wraps the former
            outcome = OpType.FAIL if never_sent(exc) else OpType.TIMEOUT
            record(OpEvent(outcome, self.process, value, w, time.time()))
            log.debug("append indeterminate value=%s error=%s", value, type(exc).__name__)
            return False
        done = time.time()
        seq, acks = _opt_int(answer.get("seq")), _opt_int(answer.get("acks"))
        answered = client.answered
        node = self._names.get(answered or "")
        record(OpEvent(OpType.OK, self.process, value, w, done, seq=seq, status=201, acks=acks, node=node))
        if answered in self._clients:
            self._entry = answered  # the master, for the next append
        return True


class ClusterReader(threading.Thread):
    """Reads the newest page of `/entries` from a random node, over and over, and records whether
    it was well formed: contiguous seqs, each message value at most once."""

    def __init__(
        self,
        urls: Mapping[str, str],
        rng: random.Random,
        recorder: Recorder,
        stop: threading.Event,
        page: int = 200,
        interval_s: float = 0.05,
    ) -> None:
        super().__init__(name="cluster-reader", daemon=True)
        self._urls = dict(urls)
        self._rng = rng
        self._recorder = recorder
        self._stop_event = stop
        self._page = page
        self._interval_s = interval_s

    def run(self) -> None:
        clients = {name: ReplogClient(url, request_timeout_s=2.0) for name, url in self._urls.items()}
        try:
            while not self._stop_event.wait(self._interval_s):
                name = self._rng.choice(sorted(clients))
                try:
                    self._read(name, clients[name])
                except (ReplogHTTPError, ConnectionFailed, requests.RequestException, ValueError, KeyError):
                    continue  # a node down, paused or cut: nothing to judge
        finally:
            for client in clients.values():
                client.close()

    def _read(self, name: str, client: ReplogClient) -> None:
        last = int(client.health(timeout_s=2.0).get("acked_seq") or 0)
        first = max(1, last - self._page + 1)
        entries = client.entries(first, self._page)
        seqs = [int(e["seq"]) for e in entries]
        values = [str(e["message"]) for e in entries if e.get("kind") is None]
        problem = None
        if seqs and seqs != list(range(seqs[0], seqs[0] + len(seqs))):
            problem = f"seqs not contiguous from {seqs[0]}"
        elif len(set(values)) != len(values):
            twice = sorted({v for v in values if values.count(v) > 1})[:3]
            problem = f"values twice in one read: {twice}"
        self._recorder.record(ReadEvent(time.time(), name, first, len(entries), problem))

"""The clients of a fault run: writers with unique values and mixed w, and a /health poller.

Each outcome is classified by what it proves: a 201 is an ok; a rejection that stores nothing is a
fail; anything else (504, a dropped connection, an unexpected status) is a timeout, which may land.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import requests

from replog.chaos.history import Event, HealthEvent, OpEvent, OpType, event_to_dict
from replog.core.errors import Overloaded, ReadOnly, WriteConcernTimeout

__all__ = ["HealthPoller", "Recorder", "Writer", "WriterConfig", "classify"]

log = logging.getLogger(__name__)

# 503 codes that the contract says are refused before a seq is assigned
_NOTHING_STORED = frozenset({ReadOnly.code, Overloaded.code})


class Recorder:
    """Appends events to a JSON Lines file as they happen (a crash keeps what was seen)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._file: IO[str] = path.open("w", encoding="utf-8")
        self._events: list[Event] = []

    def record(self, event: Event) -> None:
        line = json.dumps(event_to_dict(event))
        with self._lock:
            self._events.append(event)
            self._file.write(line + "\n")
            self._file.flush()

    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _body(resp: requests.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _opt_int(raw: object) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def classify(resp: requests.Response) -> tuple[OpType, int | None, int | None]:
    """(outcome, seq, acks) for one POST /messages answer."""
    body = _body(resp)
    seq, acks = _opt_int(body.get("seq")), _opt_int(body.get("acks"))
    if resp.status_code == 201 and seq is not None:
        return OpType.OK, seq, acks
    if resp.status_code == 503 and body.get("error") in _NOTHING_STORED:
        return OpType.FAIL, None, None
    if 400 <= resp.status_code < 500:
        return OpType.FAIL, None, None
    # 504 write_concern_timeout (seq known, stored), or anything we cannot vouch for
    return OpType.TIMEOUT, seq, acks


@dataclass(frozen=True)
class WriterConfig:
    master_url: str
    client_timeout_s: float = 10.0  # read timeout of one POST: past it the outcome is unknown
    w_choices: tuple[int, ...] = (1, 1, 2, 2, 3)
    # the server-side wait bound sent with some requests (None: no "timeout" field)
    timeout_choices: tuple[float | None, ...] = (None, None, 0.5, 2.0)
    backoff_s: float = 0.05  # after a rejection or a dead master, so a writer does not spin


class Writer(threading.Thread):
    """One client process: sends one append at a time, values `p<process>-<n>`."""

    def __init__(
        self,
        process: int,
        cfg: WriterConfig,
        rng: random.Random,
        recorder: Recorder,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"writer-{process}", daemon=True)
        self.process = process
        self._cfg = cfg
        self._rng = rng
        self._recorder = recorder
        self._stop_event = stop
        self._session = requests.Session()

    def run(self) -> None:
        n = 0
        try:
            while not self._stop_event.is_set():
                if not self._one(f"p{self.process}-{n}"):
                    self._stop_event.wait(self._cfg.backoff_s)
                n += 1
        finally:
            self._session.close()

    def _one(self, value: str) -> bool:
        """Send one append; False when the writer should back off before the next."""
        w = self._rng.choice(self._cfg.w_choices)
        wait_s = self._rng.choice(self._cfg.timeout_choices)
        body: dict[str, Any] = {"message": value, "w": w}
        if wait_s is not None:
            body["timeout"] = wait_s
        record = self._recorder.record
        record(OpEvent(OpType.INVOKE, self.process, value, w, time.time()))
        try:
            resp = self._session.post(
                f"{self._cfg.master_url}/messages",
                json=body,
                timeout=(1.0, self._cfg.client_timeout_s),
            )
        except requests.RequestException as exc:
            record(OpEvent(OpType.TIMEOUT, self.process, value, w, time.time()))
            log.debug("append indeterminate value=%s error=%s", value, type(exc).__name__)
            return False
        done = time.time()
        outcome, seq, acks = classify(resp)
        record(
            OpEvent(
                outcome,
                self.process,
                value,
                w,
                done,
                seq=seq,
                status=resp.status_code,
                acks=acks,
            )
        )
        if outcome is OpType.TIMEOUT and resp.status_code != WriteConcernTimeout.status:
            log.warning("append unexpected status value=%s status=%d", value, resp.status_code)
        return outcome is OpType.OK or resp.status_code == WriteConcernTimeout.status


class HealthPoller(threading.Thread):
    """Records the master's own read_only flag every interval, with when it was asked and answered."""

    def __init__(
        self,
        master_url: str,
        recorder: Recorder,
        stop: threading.Event,
        interval_s: float = 0.05,
    ) -> None:
        super().__init__(name="health-poller", daemon=True)
        self._url = f"{master_url}/health"
        self._recorder = recorder
        self._stop_event = stop
        self._interval_s = interval_s

    def run(self) -> None:
        with requests.Session() as session:
            while not self._stop_event.wait(self._interval_s):
                sent = time.time()
                try:
                    resp = session.get(self._url, timeout=(0.5, 1.0))
                except requests.RequestException:
                    continue
                body = _body(resp)
                if resp.status_code == 200 and isinstance(body.get("read_only"), bool):
                    self._recorder.record(
                        HealthEvent(time=time.time(), read_only=body["read_only"], sent=sent)
                    )

"""Master-to-secondary HTTP calls over keep-alive `http.client` connections.

Each `Peer` connection belongs to one thread (a link's sender or a heartbeat prober), so no lock is
needed. Every call has a connect and a read timeout. `http.client` rather than `requests` here: a send
costs a fraction of the GIL time, and this is the hot path of replication.
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from replog.core.batches import parse_entries_page
from replog.core.election import VoteAnswer
from replog.core.entry import Entry
from replog.core.matching import Mismatch
from replog.core.votes import VoteRequest, parse_vote_answer, vote_request_body
from replog.core.wire import encode

SECRET_HEADER = "X-Replog-Secret"
# Cluster mode: every internal call of a master carries its epoch and its own URL, so a receiver
# can refuse a deposed master (409 stale_epoch) and adopt a newer one (FAILOVER.md §3). Headers,
# not the batch body: the same batch format serves both modes.
EPOCH_HEADER = "X-Replog-Epoch"
MASTER_HEADER = "X-Replog-Master"


class TransportError(Exception):
    """A call failed. `answered`: the node sent an HTTP answer (it is up, the same process).
    `refused`: a 4xx; the secondary will never accept this batch as is. `mismatch`: the refusal was a
    409 `log_mismatch` (the batch does not attach to its log), with where its log stands. `epoch`:
    the node's epoch when it refused the call as stale (cluster mode), else None."""

    def __init__(
        self,
        detail: str,
        *,
        answered: bool = False,
        refused: bool = False,
        mismatch: Mismatch | None = None,
        epoch: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.answered, self.refused, self.mismatch, self.epoch = answered, refused, mismatch, epoch


def _stale_epoch(answer: Any) -> int | None:
    """The epoch of a 409 stale_epoch answer (cluster mode), else None."""
    if isinstance(answer, dict) and answer.get("error") == "stale_epoch":
        epoch = answer.get("epoch")
        if isinstance(epoch, int) and not isinstance(epoch, bool):
            return epoch
    return None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    acked_seq: int
    log_id: str | None
    storage_ok: bool = True  # False: the secondary's disk fails; it stores nothing until it recovers
    storage_reason: str | None = None


class Transport(Protocol):
    """What the link and the heartbeat need from the network (a fake in actor tests)."""

    def replicate(self, body: bytes) -> int:
        """POST a batch; return the secondary's acked seq or raise TransportError."""
        ...

    def probe(self) -> ProbeResult:
        """GET /health; raise TransportError if the node does not answer in time."""
        ...

    def fetch_entries(self, from_seq: int, limit: int) -> list[Entry]:
        """GET /entries, whole entries (a master behind its secondaries learns from them)."""
        ...

    def close(self) -> None: ...


class _Connection:
    """One keep-alive connection, reopened after any failure."""

    def __init__(self, url: str, connect_timeout_s: float, read_timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"secondary URL must be http://host:port, got {url!r}")
        self._host, self._port = parts.hostname, parts.port or 80
        self._connect_timeout_s, self._read_timeout_s = connect_timeout_s, read_timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, Any]:
        """One exchange. A kept-alive connection that the node closed while it was idle (its
        --idle-timeout) fails on its next use with a broken pipe or a reset before any answer: that
        is retried once, at once, on a fresh connection (safe: /replicate is idempotent by seq and
        /health only reads), rather than reported as a failure that costs a backoff."""
        reused = self._conn is not None
        try:
            status, raw = self._exchange(method, path, body, headers)
        except (BrokenPipeError, ConnectionResetError) as exc:  # RemoteDisconnected is a reset too
            self.close()
            if not reused:
                raise TransportError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
            status, raw = self._exchange_or_raise(method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransportError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        try:
            return status, json.loads(raw) if raw else {}
        except ValueError:
            return status, {"detail": raw[:200].decode(errors="replace")}

    def _exchange_or_raise(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        try:
            return self._exchange(method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransportError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None

    def _exchange(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        if self._conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._connect_timeout_s)
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(self._read_timeout_s)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        self._conn.request(method, path, body=body, headers=headers)
        response = self._conn.getresponse()
        raw = response.read()
        if response.will_close:
            self.close()
        return response.status, raw

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class HttpPeer:
    """A secondary as seen from the master: replicate on one connection, probe on another."""

    def __init__(
        self,
        url: str,
        *,
        secret: str | None,
        connect_timeout_s: float,
        replicate_timeout_s: float,
        probe_timeout_s: float,
        term: tuple[int, str] | None = None,
    ) -> None:
        """`term`: (epoch, own URL) of the master this peer serves, sent on every call (cluster
        mode); None in static mode, whose calls stay exactly as they were."""
        self.url = url
        self._headers = {"Content-Type": "application/json"}
        if secret:
            self._headers[SECRET_HEADER] = secret
        if term is not None:
            self._headers[EPOCH_HEADER], self._headers[MASTER_HEADER] = str(term[0]), term[1]
        self._replicate = _Connection(url, connect_timeout_s, replicate_timeout_s)
        self._probe = _Connection(url, connect_timeout_s, probe_timeout_s)
        self._fetch: _Connection | None = None  # opened on first use: only a master behind needs it
        self._fetch_timeouts = (connect_timeout_s, replicate_timeout_s)
        self._vote = _Connection(url, connect_timeout_s, probe_timeout_s)  # cluster mode's election thread

    def replicate(self, body: bytes) -> int:
        status, answer = self._replicate.request("POST", "/replicate", body, self._headers)
        if status == 200 and isinstance(answer.get("acked_seq"), int):
            return int(answer["acked_seq"])
        detail = f"HTTP {status}: {answer.get('error', '')} {answer.get('detail', '')}".strip()
        # 5xx and anything unexpected are retried; a 4xx means this batch will never be accepted.
        mismatch = Mismatch.from_wire(answer) if status == 409 else None
        raise TransportError(
            detail, answered=True, refused=400 <= status < 500, mismatch=mismatch, epoch=_stale_epoch(answer)
        )

    def probe(self) -> ProbeResult:
        status, answer = self._probe.request("GET", "/health", None, self._headers)
        if status != 200 or not isinstance(answer.get("acked_seq"), int):
            raise TransportError(f"health answered HTTP {status}", answered=True, epoch=_stale_epoch(answer))
        log_id = answer.get("log_id")
        storage = answer.get("storage")
        failing = isinstance(storage, dict) and storage.get("ok") is False
        reason = storage.get("reason") if failing else None
        return ProbeResult(
            int(answer["acked_seq"]),
            log_id if isinstance(log_id, str) else None,
            storage_ok=not failing,
            storage_reason=str(reason) if reason is not None else None,
        )

    def fetch_entries(self, from_seq: int, limit: int) -> list[Entry]:
        """GET /entries from from_seq on, whole (issue 11 C8: learning what this master lost), on the
        probe connection's settings but a connection of its own. TransportError if it fails."""
        if self._fetch is None:
            self._fetch = _Connection(self.url, *self._fetch_timeouts)
        path = f"/entries?from_seq={from_seq}&limit={limit}"
        status, answer = self._fetch.request("GET", path, None, self._headers)
        if status != 200:
            raise TransportError(f"GET /entries answered HTTP {status}", answered=True)
        try:
            return parse_entries_page(answer)
        except ValueError as exc:
            raise TransportError(f"GET /entries answered nonsense: {exc}", answered=True) from None

    def request_vote(self, request: VoteRequest) -> VoteAnswer:
        """POST /vote (cluster mode). A 200 with a valid answer, else TransportError."""
        body = encode(vote_request_body(request))
        status, answer = self._vote.request("POST", "/vote", body, self._headers)
        if status != 200:
            detail = f"HTTP {status}: {answer.get('error', '')} {answer.get('detail', '')}".strip()
            refused, epoch = 400 <= status < 500, _stale_epoch(answer)
            raise TransportError(detail, answered=True, refused=refused, epoch=epoch)
        try:
            return parse_vote_answer(answer)
        except ValueError as exc:
            raise TransportError(f"bad vote answer: {exc}", answered=True) from None

    def close(self) -> None:
        self._replicate.close()
        self._probe.close()
        if self._fetch is not None:
            self._fetch.close()
        self._vote.close()

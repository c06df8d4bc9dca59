"""The replog client library: append with exactly-once retries, follow the log, read the cluster.

```python
from replog.client import Client

with Client("http://127.0.0.1:8000") as log:
    ok = log.append("hello", w=2)             # Appended(seq=1, w=2, acks=2, key='…', duplicate=False)
    log.append_many(["a", "b"], w="majority")  # BulkAppended(seqs=(2, 3), …)
    for entry in log.follow(from_seq=1):      # Entry(seq=1, message='hello', stored_at=…), …, forever
        print(entry.seq, entry.message)
```

Every append carries an idempotency key (a uuid4 unless the caller gives one), so a retry can
never store a message twice: `append` retries on connection errors, a 503 (after its Retry-After)
and a 504 (the entry is stored; the retry with the same key waits for w again), with capped,
jittered exponential backoff, until `deadline_s` has passed (then `GaveUp`). `follow` long-polls
`GET /entries` from the next seq it has not yet yielded, so it resumes after a node restart (or
any error) with no gap and no repeat.

Exceptions say what is safe to retry: `ClientError.retryable`. `ConnectionFailed`, `Unavailable`
(503) and `NotAcknowledged` (504) are; `Rejected` (4xx: bad input, too large, `KeyReused`) is not.

`ReplogClient` is the thin one-call-one-request client the demo and tests use: no retries, dicts in
and out (its errors are the same classes).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import requests

from replog.core.backoff import BackoffPolicy, delay
from replog.net.transport import SECRET_HEADER

T = TypeVar("T")
IDEMPOTENCY_HEADER = "Idempotency-Key"


# --- errors ----------------------------------------------------------------------------------------
class ClientError(Exception):
    """Base of every error the client raises. `retryable`: whether the same call may be repeated."""

    retryable: ClassVar[bool] = False


class ConnectionFailed(ClientError, OSError):
    """The node could not be reached, or the connection broke before an answer: the append may or
    may not be stored, so retry it with the same key (as `Client.append` does). An `OSError` too,
    as the `requests` errors it wraps are, so code that caught those catches it."""

    retryable = True


class GaveUp(ClientError):
    """The call's deadline passed while retrying; `last` is the last error seen."""

    def __init__(self, detail: str, last: BaseException | None) -> None:
        super().__init__(detail)
        self.last = last


class ReplogHTTPError(ClientError):
    """The node answered with an error status; `body` is its JSON error (`error`, `detail`, ...)."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        super().__init__(f"HTTP {status}: {body.get('error')}: {body.get('detail')}")
        self.status, self.body, self.headers = status, body, headers

    @property
    def code(self) -> str | None:
        value = self.body.get("error")
        return value if isinstance(value, str) else None

    @property
    def retry_after_s(self) -> float | None:
        raw = self.headers.get("Retry-After") or self.headers.get("retry-after")
        try:
            return None if raw is None else max(0.0, float(raw))
        except ValueError:
            return None


class Unavailable(ReplogHTTPError):
    """503: read-only (no quorum), overloaded, storage unavailable, shutting down. Nothing was
    stored (or what was is known to the key): retry after `retry_after_s`."""

    retryable = True


class NotAcknowledged(ReplogHTTPError):
    """504: the entry is stored at `seq` but w did not hold in time; a retry with the same key
    waits for w again without storing it twice."""

    retryable = True

    @property
    def seq(self) -> int | None:
        value = self.body.get("seq")
        return value if isinstance(value, int) else None


class NotMaster(ReplogHTTPError):
    """421 (cluster mode): this node is not the master, even after one hop to the master it named
    (a master that just changed). Nothing was stored: retry (`master` names the node to try)."""

    retryable = True

    @property
    def master(self) -> str | None:
        value = self.body.get("master")
        return value if isinstance(value, str) else None


class Rejected(ReplogHTTPError):
    """4xx: the request itself is wrong (bad input, too large, forbidden); repeating it fails again."""


class KeyReused(Rejected):
    """422: the key was used for another message, stored at `seq`."""

    @property
    def seq(self) -> int | None:
        value = self.body.get("seq")
        return value if isinstance(value, int) else None


def http_error(status: int, body: dict[str, Any], headers: dict[str, str]) -> ReplogHTTPError:
    """The error class for a status (and code)."""
    if status == 422:
        return KeyReused(status, body, headers)
    if status == 421:
        return NotMaster(status, body, headers)
    if status == 503:
        return Unavailable(status, body, headers)
    if status == 504:
        return NotAcknowledged(status, body, headers)
    if 400 <= status < 500:
        return Rejected(status, body, headers)
    return ReplogHTTPError(status, body, headers)


# --- results ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Appended:
    """A single append held by w nodes. `duplicate`: an earlier try had stored it already."""

    seq: int
    message: str
    w: int
    acks: int
    key: str
    duplicate: bool
    attempts: int


@dataclass(frozen=True, slots=True)
class BulkAppended:
    """A bulk append held by w nodes: each message's seq, in order."""

    seqs: tuple[int, ...]
    w: int
    acks: int
    keys: tuple[str, ...]
    duplicates: int
    attempts: int


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    message: str
    stored_at: float


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One row of `Client.status()`: a node as the master sees it (the master itself first)."""

    node: str
    role: str
    status: str
    acked_seq: int
    lag: int
    last_seen_s: float | None


# --- the thin client -------------------------------------------------------------------------------
class ReplogClient:
    """Talks to one node, one request per call. Every call has a timeout (`request_timeout_s`)."""

    def __init__(self, base_url: str, *, request_timeout_s: float = 30.0, secret: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout_s = request_timeout_s
        self._session = requests.Session()
        self._session.trust_env = False  # never route cluster traffic through an env proxy
        if secret:
            self._session.headers[SECRET_HEADER] = secret

    def _call(
        self, method: str, path: str, timeout_s: float | None = None, *, follow: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        """One request; `ConnectionFailed` if no answer came, the status's error class if it failed.
        `follow` (appends): a cluster-mode node that is not the master answers 421 naming the
        master (it stored nothing); the call is sent there once. No further hops: a second 421 (a
        master that just changed) is the caller's to retry (`NotMaster` is retryable)."""
        status, body, headers = self._send(method, self.base_url + path, timeout_s, **kwargs)
        master = body.get("master")
        if follow and status == 421 and isinstance(master, str) and master.rstrip("/") != self.base_url:
            status, body, headers = self._send(method, master.rstrip("/") + path, timeout_s, **kwargs)
        if status >= 400:
            raise http_error(status, body, headers)
        return body

    def _send(
        self, method: str, url: str, timeout_s: float | None, **kwargs: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            response = self._session.request(method, url, timeout=timeout_s or self._timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise ConnectionFailed(f"{method} {url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {"error": "not_json", "detail": response.text[:200]}
        body = body if isinstance(body, dict) else {"value": body}
        return response.status_code, body, dict(response.headers)

    def append(
        self,
        message: str,
        w: int | str = 1,
        *,
        timeout_s: float | None = None,
        request_timeout_s: float | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Append one message; blocks until w nodes hold it (or the node's answer says otherwise)."""
        body: dict[str, Any] = {"message": message, "w": w}
        if timeout_s is not None:
            body["timeout"] = timeout_s
        if key is not None:
            body["id"] = key
        return self._call("POST", "/messages", request_timeout_s, follow=True, json=body)

    def append_many(
        self,
        messages: Sequence[str],
        w: int | str = 1,
        *,
        keys: Sequence[str] | None = None,
        timeout_s: float | None = None,
        request_timeout_s: float | None = None,
    ) -> dict[str, Any]:
        items: list[Any] = list(messages)
        if keys is not None:
            items = [{"message": m, "id": k} for m, k in zip(messages, keys, strict=True)]
        body: dict[str, Any] = {"messages": items, "w": w}
        if timeout_s is not None:
            body["timeout"] = timeout_s
        return self._call("POST", "/messages", request_timeout_s, follow=True, json=body)

    def messages(self, offset: int | None = None, limit: int | None = None) -> list[str]:
        params = {k: v for k, v in (("offset", offset), ("limit", limit)) if v is not None}
        return list(self._call("GET", "/messages", params=params)["messages"])

    def entries(
        self,
        from_seq: int = 1,
        limit: int = 1000,
        *,
        wait_s: float | None = None,
        timeout_s: float | None = None,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"from_seq": from_seq, "limit": limit}
        if wait_s is not None:
            params["wait"] = wait_s
        return list(self._call("GET", "/entries", timeout_s, params=params)["entries"])

    def health(self, timeout_s: float | None = None) -> dict[str, Any]:
        return self._call("GET", "/health", timeout_s)

    def set_faults(self, **faults: float) -> dict[str, Any]:
        return self._call("POST", "/faults", json=faults)

    def close(self) -> None:
        self._session.close()


# --- the library -----------------------------------------------------------------------------------
class Client:
    """The client users import: exactly-once appends with retries, and following the log.

    `url` is the master's (appends) and the default node to read from. `deadline_s` bounds each
    call, retries included. One try waits for the node's answer `request_timeout_s` longer than it
    asks the node to wait for w, so a slow w comes back as a 504, not a broken connection. `sleep`,
    `clock` and `rng` are injectable so tests need no real waiting."""

    def __init__(
        self,
        url: str,
        *,
        deadline_s: float = 60.0,
        request_timeout_s: float = 30.0,
        backoff: BackoffPolicy | None = None,
        secret: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.deadline_s = deadline_s
        self.request_timeout_s = request_timeout_s
        self.backoff = backoff or BackoffPolicy(base_s=0.1, cap_s=5.0)
        self._thin = ReplogClient(self.url, request_timeout_s=request_timeout_s, secret=secret)
        self._secret = secret
        self._sleep, self._clock = sleep, clock
        self._rng = rng or random.Random()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._thin.close()

    # appends -------------------------------------------------------------------------------------
    def append(
        self, message: str, w: int | str = 1, *, key: str | None = None, timeout_s: float | None = None
    ) -> Appended:
        """Append one message, exactly once however often it is retried. `timeout_s` is the node's
        wait for w per try (default: what is left of the deadline)."""
        key = key or uuid.uuid4().hex
        body, attempts = self._with_retries(
            lambda left: self._thin.append(
                message, w, key=key, timeout_s=_cap(timeout_s, left),
                request_timeout_s=self.request_timeout_s + _cap(timeout_s, left),
            )
        )  # fmt: skip
        return Appended(
            seq=int(body["seq"]), message=message, w=int(body["w"]), acks=int(body["acks"]), key=key,
            duplicate=bool(body.get("duplicate", False)), attempts=attempts,
        )  # fmt: skip

    def append_many(
        self,
        messages: Sequence[str],
        w: int | str = 1,
        *,
        keys: Sequence[str] | None = None,
        timeout_s: float | None = None,
    ) -> BulkAppended:
        """Append messages in one ordered request, each exactly once (a key per message)."""
        if keys is None:
            keys = [uuid.uuid4().hex for _ in messages]
        elif len(keys) != len(messages):
            raise ValueError("give one key per message")
        given = list(keys)
        body, attempts = self._with_retries(
            lambda left: self._thin.append_many(
                messages, w, keys=given, timeout_s=_cap(timeout_s, left),
                request_timeout_s=self.request_timeout_s + _cap(timeout_s, left),
            )
        )
        return BulkAppended(
            seqs=tuple(int(s) for s in body["seqs"]), w=int(body["w"]), acks=int(body["acks"]),
            keys=tuple(given), duplicates=int(body.get("duplicates", 0)), attempts=attempts,
        )  # fmt: skip

    def _with_retries(self, call: Callable[[float], T]) -> tuple[T, int]:
        """Run call(seconds left) until it succeeds, fails for good, or the deadline passes."""
        deadline = self._clock() + self.deadline_s
        attempt = 0
        while True:
            attempt += 1
            left = deadline - self._clock()
            try:
                return call(max(0.1, left)), attempt
            except ClientError as exc:
                if not exc.retryable:
                    raise
                wait_s = delay(attempt, self._rng, self.backoff)
                if isinstance(exc, ReplogHTTPError) and exc.retry_after_s is not None:
                    wait_s = max(wait_s, exc.retry_after_s)
                if self._clock() + wait_s >= deadline:
                    detail = f"gave up after {attempt} attempts in {self.deadline_s:g} s: {exc}"
                    raise GaveUp(detail, exc) from exc
                self._sleep(wait_s)

    # reads ---------------------------------------------------------------------------------------
    def entries(self, from_seq: int = 1, limit: int = 1000, *, node: str | None = None) -> list[Entry]:
        """Entries from from_seq on (at most limit), from `node` (default: the client's url)."""
        thin = self._thin if node is None else ReplogClient(node, request_timeout_s=self.request_timeout_s)
        return [_entry(e) for e in thin.entries(from_seq, limit)]

    def follow(
        self,
        from_seq: int = 1,
        *,
        node: str | None = None,
        wait_s: float = 30.0,
        page: int = 1000,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Entry]:
        """Every entry from from_seq on, in order, each once, forever (or until `stop()`): long
        polls from the next seq not yet yielded, so a node restart or a broken connection costs a
        retry (with backoff, never given up), not a gap or a repeat."""
        thin = ReplogClient(node or self.url, request_timeout_s=wait_s + self.request_timeout_s)
        next_seq, failures = from_seq, 0
        try:
            while not stop():
                try:
                    batch = thin.entries(next_seq, page, wait_s=wait_s)
                except ClientError as exc:
                    if not exc.retryable:
                        raise
                    failures += 1
                    self._sleep(delay(failures, self._rng, self.backoff))
                    continue
                failures = 0
                for raw in batch:
                    entry = _entry(raw)
                    if entry.seq != next_seq:  # a node never skips; refuse rather than hide a gap
                        raise ClientError(f"expected seq {next_seq} from {thin.base_url}, got {entry.seq}")
                    next_seq += 1
                    yield entry
        finally:
            thin.close()

    def tail(self, count: int = 10, *, node: str | None = None) -> list[Entry]:
        """The last `count` entries of `node` (default: the client's url)."""
        thin = ReplogClient(node or self.url, request_timeout_s=self.request_timeout_s)
        try:
            last = int(thin._call("GET", "/entries", params={"from_seq": 1, "limit": 1})["stored_seq"])
            return [_entry(e) for e in thin.entries(max(1, last - count + 1), count)] if last else []
        finally:
            thin.close()

    def status(self) -> list[NodeStatus]:
        """The cluster as the master sees it: the master, then each secondary."""
        health = self._thin.health()
        rows = [
            NodeStatus(
                node=str(health.get("name", self.url)), role=str(health.get("role", "?")),
                status="read-only" if health.get("read_only") else "ok",
                acked_seq=int(health.get("last_seq", health.get("acked_seq", 0))), lag=0, last_seen_s=0.0,
            )
        ]  # fmt: skip
        for s in health.get("secondaries", []):
            seen = s.get("seconds_since_seen")
            rows.append(
                NodeStatus(
                    node=str(s.get("url")), role="secondary", status=str(s.get("status")),
                    acked_seq=int(s.get("acked_seq", 0)), lag=int(s.get("lag", 0)),
                    last_seen_s=None if seen is None else float(seen),
                )
            )  # fmt: skip
        return rows


def _cap(timeout_s: float | None, left: float) -> float:
    """The node's wait for w on this try: the caller's, within what is left of the deadline."""
    return max(0.05, min(left, timeout_s) if timeout_s is not None else left)


def _entry(raw: dict[str, Any]) -> Entry:
    return Entry(int(raw["seq"]), str(raw["message"]), float(raw.get("stored_at", 0.0)))


def poll_until(
    check: Callable[[], T | None], timeout_s: float, interval_s: float = 0.02, what: str = "condition"
) -> T:
    """Call `check` until it returns something truthy, or raise TimeoutError after timeout_s.

    Exceptions from `check` count as "not yet" (a node may still be starting).
    """
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout_s}s (last error: {last_error})")
        time.sleep(interval_s)

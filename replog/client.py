"""A small client for replog nodes, used by the demo, the tests and scripts.

Errors come back as `ReplogHTTPError` carrying the node's JSON error body, so a caller can tell a
read-only master (503, retry later) from a bad request (400, do not retry).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from replog.net.transport import SECRET_HEADER

T = TypeVar("T")


class ReplogHTTPError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        super().__init__(f"HTTP {status}: {body.get('error')}: {body.get('detail')}")
        self.status, self.body, self.headers = status, body, headers

    @property
    def code(self) -> str | None:
        value = self.body.get("error")
        return value if isinstance(value, str) else None


class ReplogClient:
    """Talks to one node. Every call has a timeout (`request_timeout_s`, or per call)."""

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
        """`follow` (appends): a cluster-mode node that is not the master answers 421 naming the
        master (it stored nothing); the call is sent there once. No further hops: a second 421 (a
        master that just changed) is the caller's to retry."""
        status, body, headers = self._send(method, self.base_url + path, timeout_s, **kwargs)
        master = body.get("master")
        if follow and status == 421 and isinstance(master, str) and master.rstrip("/") != self.base_url:
            status, body, headers = self._send(method, master.rstrip("/") + path, timeout_s, **kwargs)
        if status >= 400:
            raise ReplogHTTPError(status, body, headers)
        return body

    def _send(
        self, method: str, url: str, timeout_s: float | None, **kwargs: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        response = self._session.request(method, url, timeout=timeout_s or self._timeout_s, **kwargs)
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
    ) -> dict[str, Any]:
        """Append one message; blocks until w nodes hold it (or the node's answer says otherwise)."""
        body: dict[str, Any] = {"message": message, "w": w}
        if timeout_s is not None:
            body["timeout"] = timeout_s
        return self._call("POST", "/messages", request_timeout_s, follow=True, json=body)

    def append_many(self, messages: list[str], w: int | str = 1) -> dict[str, Any]:
        return self._call("POST", "/messages", follow=True, json={"messages": messages, "w": w})

    def messages(self, offset: int | None = None, limit: int | None = None) -> list[str]:
        params = {k: v for k, v in (("offset", offset), ("limit", limit)) if v is not None}
        return list(self._call("GET", "/messages", params=params)["messages"])

    def entries(self, from_seq: int = 1, limit: int = 1000) -> list[dict[str, Any]]:
        return list(self._call("GET", "/entries", params={"from_seq": from_seq, "limit": limit})["entries"])

    def health(self, timeout_s: float | None = None) -> dict[str, Any]:
        return self._call("GET", "/health", timeout_s)

    def set_faults(self, **faults: float) -> dict[str, Any]:
        return self._call("POST", "/faults", json=faults)

    def close(self) -> None:
        self._session.close()


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

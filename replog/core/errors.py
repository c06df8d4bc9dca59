"""Errors that carry their HTTP status and a stable error code.

The web layer turns any `ReplogError` into `{"error": code, "detail": ..., **extra}` with `status`,
so every failure a client can see has one JSON shape.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ReplogError(Exception):
    """Base of every error a node reports to a caller."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}


class BadRequest(ReplogError):
    status = 400
    code = "bad_request"


class Forbidden(ReplogError):
    """An internal endpoint was called without the cluster secret."""

    status = 403
    code = "forbidden"


class LogConflict(ReplogError):
    """The same seq arrived with a different message: two histories, never merged."""

    status = 409
    code = "log_conflict"


class LogIdMismatch(ReplogError):
    """A batch from another cluster's log: refused, never merged."""

    status = 409
    code = "log_id_mismatch"


class PayloadTooLarge(ReplogError):
    status = 413
    code = "payload_too_large"


class MessageTooLarge(ReplogError):
    """One message of an append is over `--max-message-bytes` (in bulk too): nothing is stored."""

    status = 413
    code = "message_too_large"


class RequestTimeout(ReplogError):
    """The client took longer than `--request-timeout` to send its request line, headers and body."""

    status = 408
    code = "request_timeout"


class HeadersTooLarge(ReplogError):
    status = 431
    code = "headers_too_large"


class NotImplementedByServer(ReplogError):
    """An HTTP feature the server does not do (an unknown Transfer-Encoding)."""

    status = 501
    code = "not_implemented"


class ClientGone(ReplogError):
    """The client hung up while waiting for w; nobody reads this answer, but the log says it."""

    status = 499
    code = "client_closed_request"


class ReadOnly(ReplogError):
    """No quorum: the master refuses appends before storing anything."""

    status = 503
    code = "read_only"


class Overloaded(ReplogError):
    """Too many writers already wait; refused at once rather than queued."""

    status = 503
    code = "overloaded"


class ShuttingDown(ReplogError):
    status = 503
    code = "shutting_down"


class WriteConcernTimeout(ReplogError):
    """The client's own deadline passed; the entry stays stored and keeps replicating."""

    status = 504
    code = "write_concern_timeout"


class StorageUnavailable(ReplogError):
    """The node's disk refused a write or an fsync: nothing was stored (or what was not yet durable
    was dropped, its seq never acknowledged). The node retries by itself; so may the caller."""

    status = 503
    code = "storage_unavailable"


class WritesInFlight(ReplogError):
    """A log cannot be truncated while entries past the cut are still being written; retry."""

    status = 503
    code = "writes_in_flight"


class IdempotencyKeyReused(ReplogError):
    """A client's idempotency key is held in the window with another message: nothing is stored;
    the body carries the seq of the message the key belongs to."""

    status = 422
    code = "idempotency_key_reused"


class MinSeqTimeout(ReplogError):
    """A read asked for `min_seq` (read-your-writes) and this node did not hold it in time."""

    status = 504
    code = "min_seq_timeout"


class NotMaster(ReplogError):
    """Cluster mode: this node does not take writes; `master` (a URL, or None if unknown) does.
    Nothing was stored. 421 Misdirected Request: the client should send it there."""

    status = 421
    code = "not_master"


class StaleEpoch(ReplogError):
    """Cluster mode: an internal call from a master of an older epoch; nothing was stored. The
    body carries this node's `epoch` and the `master` it follows, so the caller steps down."""

    status = 409
    code = "stale_epoch"


class MasterChanged(ReplogError):
    """Cluster mode: this master stepped down while the write waited for its acks. The entry (at
    `seq`) may or may not survive: the outcome is unknown, retry with the same idempotency key."""

    status = 503
    code = "master_changed"

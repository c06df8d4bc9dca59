"""The OpenAPI 3.0 description of the public API, served by the master at `/openapi.json`.

Every limit in it is read from where it is enforced (`core.wire`, the query parsers of
`web.common`, the node's configured body limit), never retyped, so the document cannot drift from
what the node accepts; `tests/web/test_openapi.py` checks each number against the running node.
"""

from __future__ import annotations

from typing import Any

from replog import __version__
from replog.core.entry import MAX_KEY_BYTES
from replog.core.wire import DEFAULT_MAX_MESSAGE_BYTES, MAX_BULK_MESSAGES, MAX_TIMEOUT_S
from replog.web.common import MAX_PAGE
from replog.web.follow import DEFAULT_MIN_SEQ_WAIT_S, MAX_WAIT_S

_KEY = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_KEY_BYTES,
    "pattern": "^[!-~]+$",
    "description": "idempotency key: printable ASCII, no spaces. A repeat within the dedup window "
    "(--dedup-window-keys, --dedup-window-s) is not stored again: it gets the original seq, 201 once "
    "w holds; the same key with another message is 422 idempotency_key_reused",
}
_WAIT = {
    "name": "wait",
    "in": "query",
    "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S},
    "description": "seconds to wait (long poll) for from_seq to exist; then an empty page",
}
_MIN_SEQ = {
    "name": "min_seq",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1},
    "description": f"read-your-writes: wait until this node holds the seq (for `wait` seconds, default "
    f"{DEFAULT_MIN_SEQ_WAIT_S:g}), else 504 min_seq_timeout",
}


def _follow_paths() -> dict[str, Any]:
    """`GET /entries` (paging, long poll, min_seq) and `GET /stream` (Server-Sent Events)."""
    return {
        "/entries": {
            "get": {
                "summary": "Entries with their seqs from from_seq on; with `wait`, a long poll",
                "parameters": [
                    {"name": "from_seq", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    _WAIT,
                    _MIN_SEQ,
                ],
                "responses": {
                    "200": {"description": "{entries: [{seq, message, stored_at}], stored_seq}"},
                    "400": _error("bad from_seq, limit, wait or min_seq"),
                    "503": _error("overloaded: --max-followers already wait; see Retry-After"),
                    "504": _error("min_seq_timeout: this node did not hold min_seq in time"),
                },
            }
        },
        "/stream": {
            "get": {
                "summary": "Every entry from from_seq on, pushed as Server-Sent Events, each once, in order",
                "parameters": [
                    {"name": "from_seq", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "schema": {"type": "integer", "minimum": 0},
                        "description": "resume after this seq; wins over from_seq",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "`id: SEQ` and `data: {seq, message, stored_at}` per entry; "
                        "`: keep-alive` comments while idle (--follow-keepalive)",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": _error("bad from_seq or Last-Event-ID"),
                    "503": _error("overloaded: --max-followers already follow; see Retry-After"),
                },
            }
        },
    }

_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}


_CHECK_FIELDS: dict[str, Any] = {
    "epoch": {"type": "integer", "minimum": 1, "description": "the sender's (master's) epoch"},
    "prev_seq": {"type": "integer", "minimum": 0, "description": "the seq just before the batch"},
    "prev_epoch": {"type": "integer", "minimum": 0, "description": "that entry's epoch (0 for seq 0)"},
    "prev_crc": {
        "type": "integer",
        "minimum": 0,
        "maximum": 0xFFFFFFFF,
        "description": "crc32 of that entry's message in UTF-8 (0 for seq 0)",
    },
}

_LOG_MISMATCH: dict[str, Any] = {
    "type": "object",
    "required": ["error", "detail", "reason", "last", "bounds"],
    "properties": {
        "error": {"type": "string", "enum": ["log_mismatch"]},
        "detail": {"type": "string"},
        "reason": {"type": "string", "enum": ["gap", "epoch", "content"]},
        "last": {
            "type": "object",
            "properties": {"seq": {"type": "integer"}, "epoch": {"type": "integer"}},
            "description": "where the secondary's log ends",
        },
        "bounds": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
            "description": "its newest epoch boundaries [epoch, first_seq], oldest first",
        },
    },
}


def _w(node_count: int) -> dict[str, Any]:
    return {
        "description": f"Nodes (master included) that must hold the message before the answer: "
        f"1..{node_count}, 'majority' or 'all'. Default 1.",
        "oneOf": [
            {"type": "integer", "minimum": 1, "maximum": node_count},
            {"type": "string", "enum": ["majority", "all"]},
        ],
    }


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


# Internal (secondaries only, with the cluster secret): documented so other implementations can
# talk to a replog cluster. Every node of a cluster runs the same version (mixed versions: no).
def _replicate() -> dict[str, Any]:
    return {
        "post": {
            "summary": "Internal, on a secondary: apply a batch that attaches to its log (Raft's check)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["log_id", "epoch", "prev_seq", "prev_epoch", "prev_crc"],
                            "properties": {
                                "log_id": {"type": "string"},
                                **_CHECK_FIELDS,
                                "first_seq": {
                                    "type": "integer",
                                    "description": "prev_seq + 1 (compact form)",
                                },
                                "messages": {"type": "array", "items": {"type": "string"}},
                                "epochs": {
                                    "type": "array",
                                    "description": "[epoch, first_seq] where the entries' epoch changes; "
                                    "absent: all in the sender's epoch",
                                },
                                "entries": {"type": "array", "description": "general form: [{seq, message}]"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {"description": "accepted: {acked_seq}; held duplicates were skipped"},
                "400": _error("malformed, or from an older master without the check fields"),
                "403": _error("forbidden: no or wrong cluster secret"),
                "409": {
                    "description": "log_mismatch: the batch does not attach (or differs from what is held); "
                    "nothing changed. Also log_id_mismatch: another cluster's log",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LogMismatch"}}},
                },
                "503": _error("storage_unavailable: the secondary's disk failed"),
            },
        }
    }


def openapi(
    node_count: int, max_body_bytes: int, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> dict[str, Any]:
    """The document for a cluster of node_count nodes whose master accepts bodies up to max_body_bytes
    and messages up to max_message_bytes (UTF-8)."""
    w = _w(node_count)
    message = {
        "type": "string",
        "minLength": 1,
        "description": f"at most {max_message_bytes} bytes in UTF-8 (413 message_too_large)",
        "x-max-message-bytes": max_message_bytes,
    }
    append_body = {
        "type": "object",
        "properties": {
            "message": message,
            "msg": {**message, "description": "alias of message"},
            "id": _KEY,
            "messages": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BULK_MESSAGES,
                "items": {
                    "oneOf": [
                        message,
                        {
                            "type": "object",
                            "required": ["message"],
                            "properties": {"message": message, "id": _KEY},
                            "additionalProperties": False,
                        },
                    ]
                },
                "description": "bulk append: one atomic, ordered append of all of them; an item may "
                "carry its own idempotency id (one id twice in a body: 400)",
            },
            "w": w,
            "write_concern": {**w, "description": "alias of w"},
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": MAX_TIMEOUT_S,
                "description": "seconds to wait for w; then 504, the message stays stored",
            },
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "replog",
            "version": __version__,
            "description": f"A replicated log of {node_count} nodes (master + secondaries).",
        },
        "paths": {
            "/messages": {
                "post": {
                    "summary": "Append a message (or several) with a write concern",
                    "parameters": [
                        {
                            "name": "w",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "w as a query parameter",
                        },
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": _KEY,
                            "description": "a single append's key; with a body id they must agree (else 400)",
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "description": f"at most {max_body_bytes} bytes",
                        "x-max-body-bytes": max_body_bytes,
                        "content": {"application/json": {"schema": append_body}},
                    },
                    "responses": {
                        "201": {
                            "description": "held by w nodes",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "seq": {"type": "integer"},
                                            "message": {"type": "string"},
                                            "seqs": {"type": "array", "items": {"type": "integer"}},
                                            "w": {"type": "integer"},
                                            "acks": {"type": "integer"},
                                            "duplicate": {"type": "boolean"},
                                            "duplicates": {"type": "integer"},
                                        },
                                    }
                                }
                            },
                        },
                        "400": _error("bad JSON, message or w; nothing stored"),
                        "408": _error("request_timeout: the body did not arrive in time; nothing stored"),
                        "422": _error(
                            "idempotency_key_reused: the key is held with another message; carries its "
                            "seq; nothing stored"
                        ),
                        "413": _error(
                            f"payload_too_large: body over {max_body_bytes} bytes, or message_too_large: "
                            f"a message over {max_message_bytes} bytes; nothing stored"
                        ),
                        "503": _error(
                            "read_only (no quorum of verified secondaries, or the master is behind a "
                            "secondary and learning what it lost: see /health read_only_reason), "
                            "overloaded or storage_unavailable (the master's disk failed); nothing "
                            "stored; see Retry-After"
                        ),
                        "504": _error(
                            "write_concern_timeout: stored, still replicating; carries seq and acks"
                        ),
                    },
                },
                "get": {
                    "summary": "The log, in order (optionally one page)",
                    "parameters": [
                        {**_WAIT, "description": "seconds min_seq may wait"},
                        _MIN_SEQ,
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1},
                            "description": f"page size; a page holds at most {MAX_PAGE} messages",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "messages; a large answer is streamed (chunked)",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["messages"],
                                        "properties": {
                                            "messages": {"type": "array", "items": {"type": "string"}}
                                        },
                                    }
                                }
                            },
                        },
                        "400": _error("bad offset, limit, wait or min_seq"),
                        "504": _error("min_seq_timeout: this node did not hold min_seq in time"),
                        "503": _error(
                            "overloaded: too many large reads are being streamed at once; see Retry-After"
                        ),
                    },
                },
            },
            "/replicate": _replicate(),
            **_follow_paths(),
            "/health": {
                "get": {
                    "summary": "Role, quorum, read-only flag and reason, catch-up, and every secondary's "
                    "health, verified acked_seq, reported_seq, counted, conflict and behind",
                    "responses": {"200": {"description": "health", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {"schemas": {"Error": _ERROR, "LogMismatch": _LOG_MISMATCH}},
    }

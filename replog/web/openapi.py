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
                            "read_only (no quorum), overloaded or storage_unavailable (the master's disk "
                            "failed); nothing stored; see Retry-After"
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
            **_follow_paths(),
            "/health": {
                "get": {
                    "summary": "Role, quorum, read-only flag and every secondary's health",
                    "responses": {"200": {"description": "health", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {"schemas": {"Error": _ERROR}},
    }

"""The OpenAPI 3.0 description of the public API, served by the master at `/openapi.json`."""

from __future__ import annotations

from typing import Any

from replog import __version__

_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}
_W = {
    "description": "Nodes (master included) that must hold the message before the answer: 1..N+1, "
    "'majority' or 'all'. Default 1.",
    "oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": ["majority", "all"]}],
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi(node_count: int) -> dict[str, Any]:
    append_body = {
        "type": "object",
        "properties": {
            "message": {"type": "string", "minLength": 1},
            "msg": {"type": "string", "minLength": 1, "description": "alias of message"},
            "messages": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10000,
                "items": {"type": "string", "minLength": 1},
                "description": "bulk append: one atomic, ordered append of all of them",
            },
            "w": _W,
            "write_concern": {**_W, "description": "alias of w"},
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 86400,
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
                        }
                    ],
                    "requestBody": {
                        "required": True,
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
                                        },
                                    }
                                }
                            },
                        },
                        "400": _error("bad JSON, message or w; nothing stored"),
                        "413": _error("body over the size limit; nothing stored"),
                        "503": _error("read_only (no quorum) or overloaded; nothing stored; see Retry-After"),
                        "504": _error(
                            "write_concern_timeout: stored, still replicating; carries seq and acks"
                        ),
                    },
                },
                "get": {
                    "summary": "The log, in order (optionally one page)",
                    "parameters": [
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    ],
                    "responses": {
                        "200": {
                            "description": "messages",
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
                        "400": _error("bad offset or limit"),
                    },
                },
            },
            "/health": {
                "get": {
                    "summary": "Role, quorum, read-only flag and every secondary's health",
                    "responses": {"200": {"description": "health", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {"schemas": {"Error": _ERROR}},
    }

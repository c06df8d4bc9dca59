"""Structured logging: `key=value` fields with the node name in every line, as text or as JSON.

Log calls stay as they are (`log.info("secondary health changed secondary=%s from=%s", ...)`); the
JSON format (`--log-format json`) reads the rendered line back: a leading `node=NAME` is the node,
the text before the first ` key=` is the event, and each `key=value` becomes a field, its value
running to the next ` key=` (so a value may hold spaces, as error texts do). Integers, decimals,
True/False and None become JSON numbers, booleans and null. One object per line:

    {"time": "2026-12-01T15:42:21.114Z", "level": "WARNING", "node": "master",
     "logger": "replog.actors.heartbeat", "event": "secondary health changed",
     "secondary": "http://s1:8000", "from": "Healthy", "to": "Suspected"}

A field named like a key of the object itself (time, level, node, logger, event, exc) is renamed
`field_NAME`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
FORMATS = ("text", "json")
RESERVED = frozenset({"time", "level", "node", "logger", "event", "exc"})
_KEY = re.compile(r"(?:^|(?<=\s))([a-z_][a-z0-9_]*)=")
_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?\d+\.\d*(?:e[-+]?\d+)?|-?\d+e[-+]?\d+")
_WORDS = {"None": None, "True": True, "False": False}


class NodeLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes each line with `node=NAME` so interleaved logs of a cluster stay readable."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"node={self.extra['node'] if self.extra else '?'} {msg}", kwargs


def node_logger(module: str, node: str) -> NodeLogger:
    return NodeLogger(logging.getLogger(module), {"node": node})


def _value(raw: str) -> Any:
    if _INT.fullmatch(raw):
        return int(raw)
    if _FLOAT.fullmatch(raw):
        return float(raw)
    return _WORDS.get(raw, raw)


def parse_line(message: str) -> tuple[str | None, str, dict[str, Any]]:
    """(node, event, fields) of one rendered log message."""
    node = None
    if message.startswith("node="):
        first, _, message = message.partition(" ")
        node = first.removeprefix("node=")
    keys = list(_KEY.finditer(message))
    event = (message[: keys[0].start()] if keys else message).strip().rstrip(";:,")
    fields: dict[str, Any] = {}
    ends = [k.start() for k in keys[1:]] + [len(message)] if keys else []
    for key, end in zip(keys, ends, strict=True):
        raw = message[key.end() : end].strip()
        name = key.group(1)
        fields[f"field_{name}" if name in RESERVED else name] = _value(raw)
    return node, event, fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record; `node` is the process's own node name unless the line names one."""

    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        self._node = node

    def format(self, record: logging.LogRecord) -> str:
        node, event, fields = parse_line(record.getMessage())
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        out: dict[str, Any] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "node": node or self._node,
            "logger": record.name,
            "event": event,
            **fields,
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(level: str = "INFO", fmt: str = "text", node: str | None = None) -> None:
    """Root logging for a node process: `fmt` text (the default) or json; `node` names the lines
    of loggers that do not (waitress, the store)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter(node))
        logging.basicConfig(level=level.upper(), handlers=[handler])
    else:
        logging.basicConfig(level=level.upper(), format=FORMAT)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # we refuse overload ourselves

"""Structured logging: `key=value` fields with the node name in every line."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


class NodeLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes each line with `node=NAME` so interleaved logs of a cluster stay readable."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"node={self.extra['node'] if self.extra else '?'} {msg}", kwargs


def node_logger(module: str, node: str) -> NodeLogger:
    return NodeLogger(logging.getLogger(module), {"node": node})


def configure(level: str = "INFO") -> None:
    logging.basicConfig(level=level.upper(), format=FORMAT)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # we refuse overload ourselves

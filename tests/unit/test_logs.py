"""Log lines as JSON: the node, the event and the key=value fields of today's text lines."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from replog import logs
from replog.logs import JsonFormatter, node_logger, parse_line


def test_a_line_splits_into_node_event_and_typed_fields() -> None:
    node, event, fields = parse_line(
        "node=master secondary acked less than sent; resending from its acked seq "
        "secondary=http://s1:8000 sent=3..7 acked=5 delay_s=0.25 known=True log_id=None"
    )
    assert node == "master"
    assert event == "secondary acked less than sent; resending from its acked seq"
    assert fields == {
        "secondary": "http://s1:8000", "sent": "3..7", "acked": 5,
        "delay_s": 0.25, "known": True, "log_id": None,
    }  # fmt: skip


def test_a_value_runs_to_the_next_key_and_keeps_its_spaces_and_equals_signs() -> None:
    _, event, fields = parse_line(
        "replicate failed; retrying attempt=2 error=connection refused: [Errno 111] url=http://x/?w=3"
    )
    assert event == "replicate failed; retrying"
    assert fields == {"attempt": 2, "error": "connection refused: [Errno 111]", "url": "http://x/?w=3"}


def test_a_line_without_fields_is_all_event_and_reserved_names_are_renamed() -> None:
    assert parse_line("master stopping") == (None, "master stopping", {})
    assert parse_line("odd level=3 time=x")[2] == {"field_level": 3, "field_time": "x"}


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("replog.x", logging.WARNING, __file__, 1, message, args, exc_info)


def test_the_formatter_writes_one_json_object_with_the_process_node_as_fallback() -> None:
    formatter = JsonFormatter(node="s1")
    line = formatter.format(record("node=master health changed secondary=%s to=%s", "http://s1", "Suspected"))
    assert "\n" not in line
    out = json.loads(line)
    assert out["node"] == "master" and out["level"] == "WARNING" and out["logger"] == "replog.x"
    assert out["event"] == "health changed" and out["to"] == "Suspected"
    assert out["time"].endswith("Z") and "T" in out["time"]
    waitress = json.loads(formatter.format(record("log store opened dir=/data seq=%d", 4, exc=True)))
    assert waitress["node"] == "s1" and waitress["seq"] == 4
    assert "ValueError: boom" in waitress["exc"]


def test_configure_json_makes_every_line_json(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers = []
    try:
        logs.configure("INFO", "json", node="s9")
        node_logger("replog.test", "s9").info("applied seqs=%d..%d", 1, 3)
        logging.getLogger("waitress").warning("Task queue depth is 4")
    finally:
        for handler in root.handlers:
            handler.flush()
        root.handlers, root.level = saved, level
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["node"], line["event"]) for line in lines] == [
        ("s9", "applied"),
        ("s9", "Task queue depth is 4"),
    ]
    with pytest.raises(ValueError, match="log format"):
        logs.configure("INFO", "xml")

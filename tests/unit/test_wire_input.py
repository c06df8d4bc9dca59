"""Hostile request bodies: every malformed input is a 400 (or 413) BadRequest, never another exception.

Each case here raised something else on the old parser (RecursionError, ValueError, OverflowError)
or was silently accepted (a Unicode digit as w, a duplicate key, an 8 MiB message).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replog.core.errors import BadRequest, MessageTooLarge
from replog.core.wire import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_JSON_DEPTH,
    decode_json_object,
    json_depth,
    parse_append,
    resolve_w,
)

N = 3


def nested(depth: int, inner: str = "1") -> bytes:
    """`{"message": "m", "extra": [[...inner...]]}`: depth levels in all, the object included."""
    return ('{"message": "m", "extra": ' + "[" * (depth - 1) + inner + "]" * (depth - 1) + "}").encode()


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_nesting_past_the_limit_is_a_bad_request_not_a_recursion_error(depth: int) -> None:
    with pytest.raises(BadRequest, match=f"deeper than {MAX_JSON_DEPTH}"):
        decode_json_object(nested(depth))


def test_nesting_at_the_limit_is_accepted() -> None:
    assert decode_json_object(nested(MAX_JSON_DEPTH))["message"] == "m"


@pytest.mark.parametrize("opener", ["[", '{"k": '])
def test_deep_nesting_inside_an_unknown_key_of_objects_too(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    raw = ('{"message": "m", "zz": ' + opener * 2000 + "1" + closer * 2000 + "}").encode()
    with pytest.raises(BadRequest, match="deeper than"):
        decode_json_object(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"message": "' + b"[" * 5000 + b'"}',  # brackets inside a string are text
        b'{"message": "\\"' + b"{" * 5000 + b'\\""}',  # ... behind escaped quotes too
        b'{"messages": [' + b", ".join([b'"[{[{[{"'] * 3000) + b"]}",
        b'{"message": "\\\\", "extra": [[["' + b"[" * 100 + b'"]]]}',  # an escaped backslash ends a string
    ],
)
def test_brackets_inside_strings_do_not_count(raw: bytes) -> None:
    assert isinstance(decode_json_object(raw), dict)


@given(
    st.recursive(
        st.none() | st.integers() | st.text(alphabet='[]{}"\\ab'),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=20,
    )
)
def test_the_scanner_agrees_with_the_parser_on_valid_json(value: Any) -> None:
    def depth(v: Any) -> int:
        if isinstance(v, list):
            return 1 + max((depth(i) for i in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(i) for i in v.values()), default=0)
        return 0

    assert json_depth(json.dumps(value).encode()) == depth(value)


def test_an_unterminated_string_full_of_escapes_is_refused_quickly() -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        decode_json_object(b'{"message": "' + b'\\"[' * 200_000)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"message": "a", "message": "b"}',
        b'{"message": "a", "w": 1, "w": 3}',
        b'{"message": "a", "extra": {"k": 1, "k": 2}}',
        b'{"log_id": "L", "entries": [{"seq": 1, "seq": 2, "message": "a"}]}',
    ],
)
def test_a_duplicate_key_is_refused_naming_it(raw: bytes) -> None:
    with pytest.raises(BadRequest, match="appears twice"):
        decode_json_object(raw)


@pytest.mark.parametrize(
    "w",
    [
        "\u0663",  # ARABIC-INDIC DIGIT THREE: isdigit() and int() both accept it
        "\u0662",
        "\uff12",  # FULLWIDTH DIGIT TWO
        "\u00b2",  # SUPERSCRIPT TWO: isdigit() accepts, int() raises ValueError
        "\u2460",  # CIRCLED DIGIT ONE
        "9" * 5000,  # int() raises: past the 4,300-digit conversion limit
        "99999999999",
        "+2",
        "2 3",
        "1_0",
    ],
)
def test_w_is_ascii_digits_or_a_word_nothing_else(w: str) -> None:
    with pytest.raises(BadRequest):
        resolve_w(w, N)
    with pytest.raises(BadRequest):
        parse_append({"message": "m"}, w, N)


@pytest.mark.parametrize(("w", "expected"), [("3", 3), (" 2 ", 2), ("003", 3), ("All", 3), (2, 2)])
def test_w_forms_that_stay_accepted(w: object, expected: int) -> None:
    assert resolve_w(w, N) == expected


@pytest.mark.parametrize("timeout", [10**400, -(10**400), 10**20])
def test_a_huge_integer_timeout_is_a_bad_request_not_an_overflow(timeout: int) -> None:
    with pytest.raises(BadRequest, match="timeout"):
        parse_append({"message": "m", "timeout": timeout}, None, N)


def test_a_message_over_the_limit_is_refused_with_413_in_utf8_bytes() -> None:
    limit = 10
    assert parse_append({"message": "x" * 10}, None, N, limit).messages == ("x" * 10,)
    with pytest.raises(MessageTooLarge) as caught:
        parse_append({"message": "é" * 6}, None, N, limit)  # 6 characters, 12 bytes
    assert caught.value.status == 413
    assert caught.value.body() == {
        "error": "message_too_large",
        "detail": "'message' is 12 bytes in UTF-8; the limit is 10",
        "limit_bytes": 10,
    }


def test_one_large_message_in_bulk_refuses_the_whole_request_naming_it() -> None:
    with pytest.raises(MessageTooLarge, match=r"'messages\[2\]' is 11 bytes"):
        parse_append({"messages": ["a", "b", "x" * 11, "c"]}, None, N, 10)


def test_the_default_message_limit_is_one_mebibyte() -> None:
    assert DEFAULT_MAX_MESSAGE_BYTES == 1024 * 1024
    parse_append({"message": "x" * DEFAULT_MAX_MESSAGE_BYTES}, None, N)
    with pytest.raises(MessageTooLarge):
        parse_append({"message": "x" * (8 * 1024 * 1024)}, None, N)

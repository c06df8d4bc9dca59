"""Hypothesis-generated requests against a live master: no 5xx, JSON errors, nothing malformed stored.

The cluster runs in-process (master + 2 secondaries on 127.0.0.1, port 0), so generated writes
really replicate; after every request the master's log must have grown by exactly the messages
answered 201 or 504 (stored, w not met in time), and at the end it must be exactly those messages.
One test owns the cluster and the record, so it passes alone or in any order.

Besides well-formed shapes, bodies include what once gave 500s or was silently taken: nesting past
the depth limit (in unknown keys too), duplicate keys, Unicode digits as w, integers too large to
convert, messages over `max_message_bytes`; and raw bytes on a socket exercise the HTTP layer's
own errors (bad request lines, headers, lengths), which must be JSON too.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from replog.client import poll_until
from replog.config import MasterConfig, SecondaryConfig, ServerConfig
from replog.core.health import HealthPolicy
from replog.core.wire import MAX_JSON_DEPTH
from replog.node import MasterNode, SecondaryNode

MAX_MESSAGE = 64

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10), st.floats(allow_nan=True), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
known_keys = st.sampled_from(["message", "msg", "messages", "w", "write_concern", "timeout", "extra"])
unicode_digits = st.characters(categories=["Nd", "No"]).filter(lambda c: not c.isascii())
w_values = st.one_of(
    st.integers(-2, 5),
    st.sampled_from(["majority", "all", "x", "2", " 1", "", "9" * 5000]),
    st.floats(0, 4),
    json_values,
    unicode_digits,
    st.integers(min_value=10**300, max_value=10**400),
)
messages = st.one_of(
    st.text(min_size=1, max_size=10), st.text(min_size=MAX_MESSAGE - 2, max_size=MAX_MESSAGE + 40)
)


def deeply_nested(depth: int, key: str) -> bytes:
    """A valid append except for `key`, nested `depth` levels deep."""
    return ('{"message": "deep", "' + key + '": ' + "[" * depth + "]" * depth + "}").encode()


def duplicated(pairs: list[tuple[str, Any]]) -> bytes:
    """A JSON object with its first key repeated (json.dumps cannot write one)."""
    items = [*pairs, pairs[0]]
    return ("{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in items) + "}").encode()


# Idempotency keys (issue 13): a few valid ones, so repeats and reuses happen, and invalid ones.
ids = st.one_of(st.sampled_from(["k1", "k2", "k3", "", "has space", "x" * 129, "caf\u00e9"]), json_scalars)
keyed_single = st.fixed_dictionaries({"message": st.sampled_from(["same", "other"]) | messages, "id": ids},
                                     optional={"w": st.sampled_from([1, 2])})
keyed_bulk = st.fixed_dictionaries({"messages": st.lists(
    st.one_of(messages, st.fixed_dictionaries({"message": st.sampled_from(["same", "other"]), "id": ids}),
              st.fixed_dictionaries({"message": messages}, optional={"id": ids, "extra": json_scalars})),
    min_size=1, max_size=3)})
key_headers = st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3", "", "bad key"]))

bodies = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        known_keys, st.one_of(json_values, w_values, st.text(min_size=1, max_size=10)), max_size=4
    ).map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries(
        {"message": messages},
        optional={
            "w": w_values,
            "timeout": st.one_of(st.floats(-1, 5), st.integers(-1, 3), st.integers(10**300, 10**400)),
        },
    ).map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"messages": st.lists(messages, min_size=1, max_size=3)}).map(
        lambda d: json.dumps(d).encode()
    ),
    st.builds(
        deeply_nested, st.integers(MAX_JSON_DEPTH - 2, 3000), st.sampled_from(["w", "extra", "message"])
    ),
    st.lists(st.tuples(known_keys, st.one_of(w_values, messages)), min_size=1, max_size=3).map(duplicated),
    st.just(b'{"message": "\\ud800"}'),
    keyed_single.map(lambda d: json.dumps(d).encode()),
    keyed_bulk.map(lambda d: json.dumps(d).encode()),
)
paths = st.sampled_from(
    [
        "/messages",
        "/messages?w=2",
        "/messages?w=zz",
        "/messages?offset=-1",
        "/messages?limit=abc",
        "/health",
        "/nope",
        "/replicate",
        "/entries?from_seq=0",
        "/entries?from_seq=999&wait=0.01",
        "/entries?wait=abc",
        "/entries?wait=61",
        "/entries?min_seq=999&wait=0.01",
        "/messages?min_seq=0",
        "/messages?min_seq=1&wait=0.05",
        "/stream?from_seq=0",
        "/stream?from_seq=x",
        "/openapi.json",
    ]
)
methods = st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH"])


@pytest.fixture
def master() -> Iterator[MasterNode]:
    fast = ServerConfig(port=0, threads=16, max_message_bytes=MAX_MESSAGE, request_timeout_s=2.0)
    secondaries = [SecondaryNode(SecondaryConfig(name=f"s{i}", server=fast)).start() for i in (1, 2)]
    node = MasterNode(
        MasterConfig(
            secondaries=tuple(s.url for s in secondaries),
            server=fast,
            heartbeat_interval_s=0.05,
            health=HealthPolicy(1.0, 2.0),
        )
    ).start()
    poll_until(lambda: not node.view.read_only, 10, what="quorum")
    yield node
    node.stop()
    for secondary in secondaries:
        secondary.stop()


def stored(master: MasterNode) -> list[str]:
    answer: list[str] = requests.get(master.url + "/messages", timeout=10).json()["messages"]
    return answer


def test_fuzzed_requests_never_5xx_errors_are_json_and_only_accepted_is_stored(master: MasterNode) -> None:
    """Each generated request is checked on its own: no 5xx but 503/504, every answer JSON, and the
    master's log grows by exactly the messages answered 201, plus those answered 504 (the contract
    says they are stored and keep replicating). The test owns its cluster and its record of what was
    accepted, so it holds whatever else runs, in whatever order."""
    accepted: list[str] = []
    held_keys: dict[str, str] = {}  # idempotency key -> its message, as the master must hold them

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(method=methods, path=paths, body=bodies, key_header=key_headers)
    # valid appends of each shape run every time, so the final check never rests on the draw
    @example(method="POST", path="/messages", body=b'{"message": "one", "w": 1}', key_header=None)
    @example(method="POST", path="/messages?w=2", body=b'{"msg": "two"}', key_header=None)
    @example(
        method="POST", path="/messages", body=b'{"messages": ["three", "four"], "w": "all"}', key_header=None
    )
    @example(method="POST", path="/messages", body=b'{"message": "five", "id": "k9"}', key_header=None)
    @example(method="POST", path="/messages", body=b'{"message": "five", "id": "k9"}', key_header="k9")
    def one_request(method: str, path: str, body: bytes, key_header: str | None) -> None:
        before = stored(master)
        headers = {"Content-Type": "application/json"}
        if key_header is not None:
            headers["Idempotency-Key"] = key_header
        response = requests.request(method, master.url + path, data=body, timeout=10, headers=headers)
        assert response.status_code < 500 or response.status_code in (503, 504), response.text
        payload: Any = response.json()  # every answer, error or not, is JSON
        if response.status_code >= 400:
            assert isinstance(payload, dict)
            assert isinstance(payload["error"], str) and isinstance(payload["detail"], str)
        stored_504 = response.status_code == 504 and payload["error"] != "min_seq_timeout"
        if stored_504:  # a tiny `timeout` ran out before w was met: stored anyway
            assert payload["error"] == "write_concern_timeout" and isinstance(payload["seq"], int)
        elif response.status_code == 504:  # a read's min_seq was not held in time
            assert method == "GET" and "min_seq" in path
        new: list[str] = []
        if response.status_code == 201 or stored_504:
            assert method == "POST" and path.startswith("/messages")
            for message, key in sent_items(json.loads(body), key_header):
                assert isinstance(message, str) and message
                assert len(message.encode()) <= MAX_MESSAGE, "a message over the limit was stored"
                if key is None or key not in held_keys:  # a held key's repeat is not stored again
                    new.append(message)
                if key is not None:
                    assert held_keys.setdefault(key, message) == message, "a reused key was accepted"
        if response.status_code == 422:
            assert payload["error"] == "idempotency_key_reused" and isinstance(payload["seq"], int)
        assert stored(master) == before + new, "the log grew by exactly what was accepted"
        accepted.extend(new)

    one_request()
    assert accepted, "the fuzzer must have produced some valid appends"
    assert stored(master) == accepted


def sent_items(sent: dict[str, Any], key_header: str | None) -> list[tuple[str, str | None]]:
    """(message, idempotency key) of each message of an accepted append body."""
    if "messages" in sent:
        return [(m, None) if isinstance(m, str) else (m["message"], m.get("id")) for m in sent["messages"]]
    return [(sent.get("message", sent.get("msg")), sent.get("id", key_header))]


request_lines = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"GET / HTTP/1.1", b"GARBAGE", b"GET /health HTTP/9.9", b"POST /messages HTTP/1.1"]),
)
header_lines = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"Content-Length: 5",
                b"Content-Length: -1",
                b"Content-Length: abc",
                b"Content-Length: 99999999999",
                b"Transfer-Encoding: chunked",
                b"Transfer-Encoding: gzip",
                b"Expect: 100-continue",
                b"Bad Header",
                b"X: " + b"a" * 300_000,
            ]
        ),
        st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b),
    ),
    max_size=4,
)


def answers(stream: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """(status, head, body) of each answer on a connection; bodies have a Content-Length or are
    chunked (an app's answer), then the rest is skipped."""
    while stream.startswith(b"HTTP/"):
        head, _, rest = stream.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
        if b"Content-Length" not in fields:
            return
        length = int(fields[b"Content-Length"])
        yield status, head, rest[:length]
        stream = rest[length:]


def test_fuzzed_raw_http_is_answered_in_json_or_closed_and_the_node_lives(master: MasterNode) -> None:
    """Raw request bytes on a socket: whatever the HTTP layer answers is a JSON error below 500 (or
    the connection closes), and the master still answers /health after each."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(line=request_lines, headers=header_lines, body=st.binary(max_size=20))
    def one_exchange(line: bytes, headers: list[bytes], body: bytes) -> None:
        raw = b"\r\n".join([line, *headers]) + b"\r\n\r\n" + body
        answer = b""
        with socket.create_connection(("127.0.0.1", master.server.port), timeout=10) as sock:
            try:
                sock.sendall(raw)
                sock.shutdown(socket.SHUT_WR)  # no more bytes: an incomplete request ends here
            except OSError:
                pass  # the node answered an oversized request and closed before all of it was sent
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except ConnectionResetError:
                pass
        for status, head, payload in answers(answer):
            assert status < 500 or status in (501, 503), answer[:300]
            if status >= 400:
                assert b"Content-Type: application/json" in head, answer[:300]
                assert isinstance(json.loads(payload)["error"], str)
        assert requests.get(master.url + "/health", timeout=10).status_code == 200

    one_exchange()

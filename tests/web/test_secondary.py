"""The secondary's HTTP API: idempotent /replicate, the consistency check, refusals, faults, the secret."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from replog.config import Faults, SecondaryConfig, ServerConfig
from replog.core.matching import crc_of
from replog.net.transport import SECRET_HEADER
from replog.node import SecondaryNode

from .conftest import HTTP_TIMEOUT_S

SECRET = "s3cret"


class Secondary:
    def __init__(self, **config: Any) -> None:
        self.node = SecondaryNode(SecondaryConfig(name="s1", server=ServerConfig(port=0, threads=4),
                                                  **config)).start()
        self.url = self.node.url

    def replicate(self, entries: list[tuple[int, str]], log_id: str = "L",
                  headers: dict[str, str] | None = None, *, prev: tuple[int, int, str] | None = None,
                  epoch: int = 1) -> requests.Response:
        """A batch in the general form, after `prev` = (seq, epoch, message); by default the entry
        before the first, as the master's log of letters holds it (seq 1 "a", 2 "b", ...)."""
        if prev is None:
            seq = entries[0][0] - 1 if entries else 0
            prev = (seq, 1 if seq else 0, chr(ord("a") + seq - 1) if seq else "")
        head = {"epoch": epoch, "prev_seq": prev[0], "prev_epoch": prev[1],
                "prev_crc": crc_of(prev[2]) if prev[0] else 0}
        body = {"log_id": log_id, **head, "entries": [{"seq": s, "message": m} for s, m in entries]}
        return requests.post(self.url + "/replicate", json=body, headers=headers, timeout=HTTP_TIMEOUT_S)

    def messages(self) -> list[str]:
        answer: list[str] = requests.get(self.url + "/messages", timeout=HTTP_TIMEOUT_S).json()["messages"]
        return answer

    def health(self) -> dict[str, Any]:
        answer: dict[str, Any] = requests.get(self.url + "/health", timeout=HTTP_TIMEOUT_S).json()
        return answer

    def faults(self, changes: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
               ) -> requests.Response:
        if changes is None:
            return requests.get(self.url + "/faults", timeout=HTTP_TIMEOUT_S)
        return requests.post(self.url + "/faults", json=changes, headers=headers, timeout=HTTP_TIMEOUT_S)


@pytest.fixture
def start_secondary() -> Iterator[Callable[..., Secondary]]:
    started: list[Secondary] = []

    def start(**config: Any) -> Secondary:
        started.append(Secondary(**config))
        return started[-1]

    yield start
    for secondary in started:
        secondary.node.stop()


@pytest.fixture
def secondary(start_secondary: Callable[..., Secondary]) -> Secondary:
    return start_secondary()


def acked(response: requests.Response) -> int:
    assert response.status_code == 200, response.text
    value: int = response.json()["acked_seq"]
    return value


def error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["detail"]
    code: str = body["error"]
    return code


def test_starts_empty(secondary: Secondary) -> None:
    assert secondary.messages() == []
    health = secondary.health()
    assert (health["role"], health["name"], health["acked_seq"], health["log_id"]) == ("secondary", "s1", 0,
                                                                                      None)


def test_replicate_is_idempotent(secondary: Secondary) -> None:
    batch = [(1, "a"), (2, "b"), (3, "c")]
    assert acked(secondary.replicate(batch)) == 3
    assert acked(secondary.replicate(batch)) == 3
    assert acked(secondary.replicate([(2, "b")])) == 3
    assert acked(secondary.replicate([(2, "b"), (3, "c"), (4, "d")])) == 4
    assert secondary.messages() == ["a", "b", "c", "d"]
    assert secondary.health()["log_id"] == "L"


def mismatch(response: requests.Response) -> dict[str, Any]:
    assert error(response, 409) == "log_mismatch"
    body: dict[str, Any] = response.json()
    return {k: body[k] for k in ("reason", "last", "bounds")}


def test_a_batch_past_a_gap_is_refused_and_nothing_held(secondary: Secondary) -> None:
    assert acked(secondary.replicate([(1, "a")])) == 1
    refused = secondary.replicate([(3, "c"), (4, "d")])
    assert mismatch(refused) == {"reason": "gap", "last": {"seq": 1, "epoch": 1}, "bounds": [[1, 1]]}
    assert secondary.messages() == ["a"]
    assert secondary.health()["acked_seq"] == 1
    assert acked(secondary.replicate([(2, "b"), (3, "c"), (4, "d")])) == 4, "nothing of 3..4 was held"


def test_a_gap_from_seq_one_is_refused(secondary: Secondary) -> None:
    refused = secondary.replicate([(2, "b"), (3, "c")])
    assert mismatch(refused) == {"reason": "gap", "last": {"seq": 0, "epoch": 0}, "bounds": []}
    assert secondary.messages() == []
    assert secondary.health()["log_id"] is None, "a refused batch names nothing"


def test_a_batch_after_an_entry_of_another_epoch_is_refused(secondary: Secondary) -> None:
    assert acked(secondary.replicate([(1, "a"), (2, "b")])) == 2
    refused = secondary.replicate([(3, "c")], prev=(2, 2, "b"), epoch=2)
    assert mismatch(refused) == {"reason": "epoch", "last": {"seq": 2, "epoch": 1}, "bounds": [[1, 1]]}
    assert secondary.messages() == ["a", "b"]


def test_a_batch_after_an_entry_with_other_content_is_refused(secondary: Secondary) -> None:
    assert acked(secondary.replicate([(1, "a"), (2, "b")])) == 2
    refused = secondary.replicate([(3, "c")], prev=(2, 1, "B"))
    assert mismatch(refused)["reason"] == "content"
    assert acked(secondary.replicate([], prev=(2, 1, "b"))) == 2, "an empty handshake at the right place"
    assert mismatch(secondary.replicate([], prev=(1, 1, "x")))["reason"] == "content"
    assert secondary.messages() == ["a", "b"]


def test_a_batch_without_the_check_fields_is_a_clear_400(secondary: Secondary) -> None:
    body = {"log_id": "L", "entries": [{"seq": 1, "message": "a"}]}  # an older master's batch
    response = requests.post(secondary.url + "/replicate", json=body, timeout=HTTP_TIMEOUT_S)
    assert error(response, 400) == "bad_request"
    assert "older replog" in response.json()["detail"]
    assert secondary.messages() == []


def test_empty_batch_answers_the_acked_seq(secondary: Secondary) -> None:
    assert acked(secondary.replicate([(1, "a")])) == 1
    assert acked(secondary.replicate([])) == 1


def test_other_log_id_is_refused(secondary: Secondary) -> None:
    assert acked(secondary.replicate([(1, "a")], log_id="L1")) == 1
    response = secondary.replicate([(2, "b")], log_id="L2")
    assert error(response, 409) == "log_id_mismatch"
    assert response.json()["expected_log_id"] == "L1"
    assert secondary.messages() == ["a"]
    assert secondary.health()["log_id"] == "L1"


def test_conflicting_entry_is_refused_and_nothing_applied(secondary: Secondary) -> None:
    assert acked(secondary.replicate([(1, "a"), (2, "b"), (3, "c")])) == 3
    refused = secondary.replicate([(2, "b"), (3, "other"), (4, "d")])
    assert mismatch(refused)["reason"] == "content"
    assert "seq 3 is held" in refused.json()["detail"]
    assert secondary.messages() == ["a", "b", "c"], "never overwritten, nothing appended"
    assert secondary.health()["duplicate_entries"] == 0
    assert acked(secondary.replicate([(2, "b"), (3, "c"), (4, "d")])) == 4


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"[]", b'{"entries": []}', b'{"log_id": "L", "entries": [{"seq": 0, "message": "a"}]}',
     b'{"log_id": "L", "entries": [{"seq": 2, "message": "b"}, {"seq": 1, "message": "a"}]}'],
)
def test_malformed_batch_is_400(secondary: Secondary, raw: bytes) -> None:
    response = requests.post(secondary.url + "/replicate", data=raw, timeout=HTTP_TIMEOUT_S)
    assert error(response, 400) == "bad_request"
    assert secondary.health()["log_id"] is None


def test_unknown_path_and_wrong_method_are_json(secondary: Secondary) -> None:
    assert error(requests.get(secondary.url + "/nope", timeout=HTTP_TIMEOUT_S), 404) == "not_found"
    response = requests.get(secondary.url + "/replicate", timeout=HTTP_TIMEOUT_S)
    assert error(response, 405) == "method_not_allowed"
    response = requests.post(secondary.url + "/messages", json={"message": "a"}, timeout=HTTP_TIMEOUT_S)
    assert error(response, 405) == "method_not_allowed"  # a secondary takes no client writes
    assert secondary.messages() == []


def test_faults_get_and_set(secondary: Secondary) -> None:
    assert secondary.faults().json() == {"delay_s": 0.0, "error_rate": 0.0}
    response = secondary.faults({"delay": 0.01, "error_rate": 0.5})
    assert response.status_code == 200
    assert response.json() == {"delay_s": 0.01, "error_rate": 0.5}
    assert secondary.faults().json() == {"delay_s": 0.01, "error_rate": 0.5}
    assert secondary.health()["faults"] == {"delay_s": 0.01, "error_rate": 0.5}
    assert secondary.faults({"delay_s": 0}).json() == {"delay_s": 0.0, "error_rate": 0.5}


@pytest.mark.parametrize("changes", [{"error_rate": 1.5}, {"error_rate": -0.1}, {"delay": -1},
                                     {"delay": "x"}, {"delay": True}, {"bogus": 1}])
def test_bad_faults_are_400_and_change_nothing(secondary: Secondary, changes: dict[str, Any]) -> None:
    assert error(secondary.faults(changes), 400) == "bad_request"
    assert secondary.faults().json() == {"delay_s": 0.0, "error_rate": 0.0}


def test_injected_error_comes_after_the_batch_was_applied(secondary: Secondary) -> None:
    assert secondary.faults({"error_rate": 1.0}).status_code == 200
    response = secondary.replicate([(1, "a"), (2, "b")])
    assert error(response, 500) == "injected_fault"
    assert response.json()["acked_seq"] == 2
    assert secondary.messages() == ["a", "b"]
    assert secondary.faults({"error_rate": 0.0}).status_code == 200
    assert acked(secondary.replicate([(1, "a"), (2, "b")])) == 2  # the resend is deduplicated
    assert secondary.messages() == ["a", "b"]


def test_faults_set_at_start(start_secondary: Callable[..., Secondary]) -> None:
    secondary = start_secondary(faults=Faults(delay_s=0.2))
    assert secondary.faults().json() == {"delay_s": 0.2, "error_rate": 0.0}
    started = time.monotonic()
    assert acked(secondary.replicate([(1, "a")])) == 1
    assert time.monotonic() - started >= 0.2  # a lower bound: a busy machine cannot break it
    # cleared at runtime, from a delay far past the request's own timeout: a delay left in place
    # fails the request instead of merely slowing it, so no upper bound on the clock is needed
    assert secondary.faults({"delay": 600}).status_code == 200
    assert secondary.faults({"delay": 0}).status_code == 200
    assert acked(secondary.replicate([(2, "b")])) == 2


def test_secret_guards_the_internal_endpoints(start_secondary: Callable[..., Secondary]) -> None:
    secondary = start_secondary(cluster_secret=SECRET)
    good, bad = {SECRET_HEADER: SECRET}, {SECRET_HEADER: "guess"}
    assert error(secondary.replicate([(1, "a")]), 403) == "forbidden"
    assert error(secondary.replicate([(1, "a")], headers=bad), 403) == "forbidden"
    assert secondary.messages() == []
    assert acked(secondary.replicate([(1, "a")], headers=good)) == 1
    assert error(secondary.faults({"error_rate": 1.0}), 403) == "forbidden"
    assert error(secondary.faults({"error_rate": 1.0}, headers=bad), 403) == "forbidden"
    assert secondary.faults().json()["error_rate"] == 0.0  # reads need no secret
    assert secondary.faults({"error_rate": 0.25}, headers=good).status_code == 200
    assert secondary.messages() == ["a"]
    assert secondary.health()["acked_seq"] == 1

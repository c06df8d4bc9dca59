"""`POST /vote` over real HTTP: a candidate's `HttpPeer.request_vote` against a member's election
actor behind the route, with the secret, and bad input refused with a JSON error."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
import requests

from replog.actors.election import ElectionActor, Start, VoteAsked
from replog.config import ServerConfig
from replog.core.election import Election, ElectionConfig, VoteAnswer
from replog.core.epochs import Position
from replog.core.votes import VoteRequest
from replog.net.transport import SECRET_HEADER, HttpPeer, TransportError
from replog.storage.store import MemoryStore
from replog.web.common import JsonBottle
from replog.web.server import HttpServer
from replog.web.vote import add_vote_route
from tests.actors.fakes import FakeClock

MEMBERS = ("http://a", "http://b", "http://c")
SECRET = "s3cret"
TIMEOUT_S = 10.0


class NoRoles:
    def became_master(self, epoch: int) -> None:
        raise AssertionError("a voter never becomes master here")

    def stepped_down(self, epoch: int, master: str | None) -> None:
        pass


class NoVoter:
    def request_vote(self, request: VoteRequest) -> VoteAnswer:
        raise TransportError("not used")

    def close(self) -> None:
        pass


@pytest.fixture
def member() -> Iterator[tuple[str, MemoryStore]]:
    """Member b: its election actor behind POST /vote on 127.0.0.1."""
    store = MemoryStore()
    config = ElectionConfig("http://b", MEMBERS)
    voters = {url: NoVoter() for url in config.others}
    election = ElectionActor.start(
        Election(config, store.epoch, None), store, voters, NoRoles(), FakeClock(), random.Random(0)
    )
    election.ask(Start(), timeout=TIMEOUT_S)

    def ask_vote(request: VoteRequest) -> VoteAnswer:
        answer: VoteAnswer = election.ask(VoteAsked(request), timeout=2.0)
        return answer

    app = JsonBottle()
    add_vote_route(app, ask_vote, SECRET)
    server = HttpServer(app, ServerConfig(port=0, threads=2))
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", store
    finally:
        server.stop()
        pykka.ActorRegistry.stop_all(timeout=5.0)


def peer(url: str, secret: str | None = SECRET) -> HttpPeer:
    return HttpPeer(url, secret=secret, connect_timeout_s=2.0, replicate_timeout_s=2.0, probe_timeout_s=2.0)


def test_a_vote_is_granted_once_per_epoch_and_persisted_before_the_answer(member: Any) -> None:
    url, store = member
    candidate = peer(url)
    try:
        granted = candidate.request_vote(VoteRequest(2, "http://a", Position(1, 10)))
        assert granted == VoteAnswer(2, True, "granted")
        assert store.epoch == 2 and store.vote is not None and store.vote.candidate == "http://a"
        second = candidate.request_vote(VoteRequest(2, "http://c", Position(1, 10)))
        assert second.granted is False and "already voted" in second.reason
        behind = candidate.request_vote(VoteRequest(3, "http://c", Position(0, 0)))
        assert behind.granted is True  # b's own log is empty, so an empty candidate log is not behind
    finally:
        candidate.close()


def test_the_vote_needs_the_cluster_secret(member: Any) -> None:
    url, store = member
    with pytest.raises(TransportError) as refused:
        peer(url, secret="wrong").request_vote(VoteRequest(2, "http://a", Position(0, 0)))
    assert refused.value.refused and "403" in str(refused.value)
    assert store.epoch == 1 and store.vote is None


@pytest.mark.parametrize(
    "body",
    [
        {"epoch": 0, "candidate": "http://a", "last": {"seq": 0, "epoch": 0}},
        {"epoch": True, "candidate": "http://a", "last": {"seq": 0, "epoch": 0}},
        {"epoch": 2, "candidate": "", "last": {"seq": 0, "epoch": 0}},
        {"epoch": 2, "candidate": "http://a", "last": {"seq": 3, "epoch": 0}},
        {"epoch": 2, "candidate": "http://a", "last": [3, 1]},
        {"epoch": 2, "candidate": "http://a"},
    ],
)
def test_a_malformed_vote_request_is_a_json_400_and_changes_nothing(
    member: Any, body: dict[str, Any]
) -> None:
    url, store = member
    answer = requests.post(url + "/vote", json=body, headers={SECRET_HEADER: SECRET}, timeout=TIMEOUT_S)
    assert answer.status_code == 400 and answer.json()["error"] == "bad_request"
    assert store.epoch == 1 and store.vote is None

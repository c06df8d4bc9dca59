"""Cluster mode in containers: compose.cluster.yaml, `docker kill` of the master, and its return.

Issue 12 item 9. The project runs under a unique name and is torn down whatever happens (see
compose.py). Writes go through `replog.client` from a container on the project's network, so a
non-master's 421 is followed to the master's advertise URL as a real client would follow it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .compose import SERVICES, ComposeCluster
from .harness import Node, poll

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600, func_only=True)]


ELECTION_S = 60  # bound for an election on a busy 2-core machine (2.25-4.5 s when idle)


def writable_master(project: ComposeCluster, among: list[str]) -> str:
    """Poll the named services until exactly one says it is a writable master; its name."""

    def one() -> str | None:
        found = []
        for service in among:
            health = project.nodes[service].health()
            if health["role"] == "master" and health["read_only"] is False:
                found.append(service)
        return found[0] if len(found) == 1 else None

    return poll(one, ELECTION_S, f"one writable master among {among}", interval_s=0.2)


def acknowledged(project: ComposeCluster, via: str, message: str) -> dict[str, Any]:
    """Append with w=majority through replog.client sent to `via`; retried only on answers that
    stored nothing (421: no master known yet, 503 read_only, no connection made), so that the
    logs can be compared exactly: any other answer fails the test."""

    def attempt() -> dict[str, Any] | None:
        answer = project.client_append(via, message, "majority")
        if answer["status"] == 201:
            body: dict[str, Any] = answer["body"]
            return body
        assert answer["status"] in (0, 421, 503), f"{message}: {answer}"
        assert answer["status"] != 503 or answer["body"].get("error") == "read_only", f"{message}: {answer}"
        return None

    return poll(attempt, ELECTION_S, f"{message} acknowledged with w=majority via {via}", interval_s=0.2)


def same_logs(nodes: list[Node]) -> list[str] | None:
    logs = [node.messages() for node in nodes]
    return logs[0] if all(log == logs[0] for log in logs) else None


def test_docker_kill_of_the_master_elects_another_and_the_old_master_rejoins_as_a_secondary(
    compose_cluster: ComposeCluster,
) -> None:
    project = compose_cluster
    nodes = project.up()
    first = writable_master(project, list(SERVICES))
    first_epoch = nodes[first].health()["epoch"]
    others = [s for s in SERVICES if s != first]

    before = [f"before-{i}" for i in range(3)]
    for message in before:  # sent to a secondary: replog.client follows its 421 to the master
        assert acknowledged(project, others[0], message)["acks"] >= 2
    poll(lambda: same_logs(list(nodes.values())) == before, 30, "all three hold the first writes")

    # The master alone holds one more entry: cut off the network, it takes a w=1 write (within
    # its lease: answered at once), and it is killed before it is connected again.
    project.isolate(first)
    answer = project.append_inside(first, "unreplicated", 1)
    # Stored but unacknowledged (its lease just ran out) is as good for this test.
    assert answer["status"] == 201 or answer["body"].get("error") == "master_changed", answer
    nodes[first].kill()
    assert nodes[first].wait_exited()["ExitCode"] == 137
    project.reconnect(first)  # still stopped: it only gets its name back for the restart

    second = writable_master(project, others)
    second_epoch = nodes[second].health()["epoch"]
    assert second_epoch > first_epoch
    follower = next(s for s in others if s != second)
    after = [f"after-{i}" for i in range(3)]
    for message in after:
        assert acknowledged(project, follower, message)["acks"] >= 2
    survivors = [nodes[s] for s in others]
    final = poll(lambda: same_logs(survivors), 30, "the survivors hold the same log")
    assert final == [*before, *after], "acknowledged writes kept in order, the unreplicated one nowhere"
    # restart: on-failure never restarts a container its user killed: it waited for us.
    assert nodes[first].state()["Running"] is False

    nodes[first].start()  # on its volume: the unreplicated entry is still in its log

    def rejoined() -> dict[str, Any] | None:
        health = nodes[first].health()
        ok = health["role"] == "secondary" and health["epoch"] == nodes[second].health()["epoch"]
        return health if ok and health["master"] == project.advertise_url(second) else None

    poll(rejoined, ELECTION_S, f"{first} is a secondary of epoch {second_epoch} following {second}")
    assert writable_master(project, list(SERVICES)) == second  # its return deposed nobody

    # Log matching moves the old master's unreplicated suffix into its rollback.jsonl.
    poll(lambda: nodes[first].messages() == final, 60, f"{first} caught up with {second}")
    rolled_back = [json.loads(line) for line in project.read_file(first, "/data/rollback.jsonl").splitlines()]
    assert "unreplicated" in [line["message"] for line in rolled_back], rolled_back
    assert nodes[first].health()["rolled_back_entries"] >= 1
    for node in nodes.values():
        assert "unreplicated" not in node.messages()

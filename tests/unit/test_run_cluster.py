"""`run_cluster.py --demo`'s verdict: it passes only when every node holds Msg1..Msg4 in order AND
Msg3's w=3 answer came; anything else must fail (and the demo then exits non-zero)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from run_cluster import DEMO_TIMINGS, EXPECTED, build_cluster, demo_passed

ALL_HOLD = {"master": EXPECTED, "s1": EXPECTED, "s2": EXPECTED}
MSG3_OK = {"seq": 3, "message": "Msg3", "w": 3, "acks": 3}


def test_passes_when_every_node_holds_all_four_and_msg3_was_answered() -> None:
    assert demo_passed(ALL_HOLD, MSG3_OK)


@pytest.mark.parametrize(
    "msg3",
    [
        {},  # the answer never came (the waiter gave up)
        {"error": "HTTP 503: shutting_down: the node is stopping"},
        {"seq": 3, "message": "Msg3", "w": 3, "acks": 2},
        {"seq": 4, "message": "Msg3", "w": 3, "acks": 3},
    ],
)
def test_fails_without_msg3s_answer_even_when_every_node_holds_all_four(msg3: dict[str, Any]) -> None:
    assert not demo_passed(ALL_HOLD, msg3)


@pytest.mark.parametrize(
    "held",
    [
        {},
        {**ALL_HOLD, "s2": ["Msg1", "Msg2", "Msg3"]},
        {**ALL_HOLD, "s1": ["Msg1", "Msg2", "Msg4", "Msg3"]},
    ],
)
def test_fails_unless_every_node_holds_all_four_in_order(held: dict[str, list[str]]) -> None:
    assert not demo_passed(held, MSG3_OK)


def test_failover_gives_every_node_the_member_list_and_the_masters_timings(tmp_path: Any) -> None:
    args = argparse.Namespace(
        failover=True, demo=False, delay=0.0, error_rate=0.0, in_memory=True, base_port=23000, pin=False,
        insecure=True,
    )  # fmt: skip
    cluster = build_cluster(args, tmp_path, log_dir=None)
    members = "--members=http://127.0.0.1:23000,http://127.0.0.1:23001,http://127.0.0.1:23002"
    for node in cluster.nodes.values():
        argv = node.spec.argv()
        assert members in argv and set(DEMO_TIMINGS) <= set(argv)
        assert not any(a.startswith("--secondaries") for a in argv)
    assert cluster.master.spec.role.value == "master"  # it stands first on a fresh directory

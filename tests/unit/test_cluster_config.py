"""Cluster mode's configuration: the member list, which member this node is, election timeouts."""

from __future__ import annotations

import pytest

from replog.cli import build_parser, cluster_config, cluster_mode, main
from replog.cluster.node import cluster_log_id
from replog.config import find_member

MEMBERS = "http://a:8000,http://b:8000,http://c:8000"


def config_for(role: str, *argv: str):  # type: ignore[no-untyped-def]
    args = build_parser(role, cluster=True).parse_args(["--in-memory", f"--members={MEMBERS}", *argv])
    return cluster_config(args, role)


def test_members_make_a_cluster_node_whose_others_are_its_secondaries() -> None:
    config = config_for("secondary", "--advertise-url=http://B:8000/")
    assert config.me == "http://b:8000"  # found by node_key, kept as spelled in --members
    assert config.master.secondaries == ("http://a:8000", "http://c:8000")
    assert config.first_role == "secondary"


def test_election_timeout_defaults_to_1_5_to_3_times_the_unhealthy_threshold() -> None:
    config = config_for("master", "--advertise-url=http://a:8000", "--suspect-after=1", "--unhealthy-after=2")
    assert (config.election_min_s, config.election_max_s) == (3.0, 6.0)
    config = config_for("master", "--advertise-url=http://a:8000", "--election-timeout=0.5,1")
    assert (config.election_min_s, config.election_max_s) == (0.5, 1.0)


@pytest.mark.parametrize("raw", ["1", "2,1", "0,1", "a,b", "1,2,3"])
def test_a_bad_election_timeout_is_refused(raw: str) -> None:
    with pytest.raises(SystemExit):
        config_for("master", "--advertise-url=http://a:8000", f"--election-timeout={raw}")


def test_the_default_advertise_url_is_host_and_port() -> None:
    args = build_parser("secondary", cluster=True).parse_args(
        ["--in-memory", "--members=http://127.0.0.1:9001,http://127.0.0.1:9002", "--port=9002"]
    )
    assert cluster_config(args, "secondary").me == "http://127.0.0.1:9002"


def test_a_node_not_in_the_members_or_a_member_listed_twice_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["secondary", "--in-memory", f"--members={MEMBERS}", "--advertise-url=http://d:8000"]) == 2
    assert "is not one of --members" in capsys.readouterr().err
    twice = "http://a:8000,http://A:8000/,http://b:8000"
    assert main(["master", "--in-memory", f"--members={twice}", "--advertise-url=http://b:8000"]) == 2
    assert "names a node twice" in capsys.readouterr().err


def test_cluster_mode_is_chosen_by_the_flag_or_its_env_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not cluster_mode(["--port=1"])
    assert cluster_mode(["--members", MEMBERS]) and cluster_mode([f"--members={MEMBERS}"])
    monkeypatch.setenv("REPLOG_MEMBERS", MEMBERS)
    assert cluster_mode([])


def test_find_member_compares_nodes_not_strings() -> None:
    assert find_member("HTTP://C:8000/", ("http://a:8000", "http://c:8000")) == "http://c:8000"
    with pytest.raises(ValueError, match="not one of"):
        find_member("http://c:8001", ("http://a:8000", "http://c:8000"))


def test_every_member_derives_the_same_log_id_from_the_member_list() -> None:
    assert cluster_log_id(("http://a:1", "http://b:1")) == cluster_log_id(("http://B:1/", "http://a:1"))
    assert cluster_log_id(("http://a:1", "http://b:1")) != cluster_log_id(("http://a:1", "http://c:1"))


def test_cluster_mode_probes_faster_by_default_so_failover_takes_seconds() -> None:
    config = config_for("secondary", "--advertise-url=http://b:8000")
    assert config.master.heartbeat_interval_s == 0.2
    assert (config.master.health.suspect_after_s, config.master.health.unhealthy_after_s) == (0.6, 1.5)
    assert (config.election_min_s, config.election_max_s) == (2.25, 4.5)
    static = build_parser("master", cluster=False).parse_args(["--in-memory"])
    assert (static.heartbeat_interval, static.suspect_after, static.unhealthy_after) == (1.0, 3.0, 6.0)

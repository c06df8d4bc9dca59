"""`LocalCluster`'s layout, before any process starts: names, ports, data dirs, logs, argv, proxies
and the secret are what run_cluster.py, the tests, the benchmark and the fault run rely on."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from replog.net.transport import SECRET_HEADER
from replog.testing.cluster import LocalCluster, Role


def flag(argv: list[str], name: str) -> list[str]:
    return [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]


def test_fixed_ports_from_a_base_in_order_with_data_dirs_and_logs(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "data", base_port=8000, log_dir=tmp_path / "logs")
    assert list(cluster.nodes) == ["master", "s1", "s2"]
    assert [n.url for n in cluster.nodes.values()] == [f"http://127.0.0.1:{p}" for p in (8000, 8001, 8002)]
    assert cluster.master.spec.role is Role.MASTER
    assert {n.spec.role for n in cluster.secondaries.values()} == {Role.SECONDARY}
    assert cluster.secondaries["s2"].spec.data_dir == tmp_path / "data" / "s2"
    assert cluster.log_path("s1") == tmp_path / "logs" / "s1.log"
    assert (tmp_path / "logs").is_dir()
    master_argv = cluster.master.spec.argv()
    assert flag(master_argv, "secondaries") == ["http://127.0.0.1:8001,http://127.0.0.1:8002"]
    assert flag(master_argv, "name") == ["master"]


def test_free_ports_differ_and_logs_are_optional(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, secondaries=("a", "b", "c"))
    ports = [n.spec.port for n in cluster.nodes.values()]
    assert len(set(ports)) == 4 and 0 not in ports
    assert (
        cluster.master.spec.argv().count(
            "--secondaries=" + ",".join(n.url for n in cluster.secondaries.values())
        )
        == 1
    )
    with pytest.raises(ValueError, match="no log files"):
        cluster.log_path("a")


def test_a_nodes_own_argv_comes_last_so_it_overrides_the_common_one(tmp_path: Path) -> None:
    cluster = LocalCluster(
        tmp_path,
        secondaries={"s1": ("--delay=0.5",), "s2": ()},
        common_argv=("--in-memory", "--log-level=WARNING"),
        master_argv=("--log-level=DEBUG",),
    )
    assert flag(cluster.master.spec.argv(), "log-level") == ["WARNING", "DEBUG"]  # argparse: last wins
    assert "--in-memory" in cluster.secondaries["s2"].spec.argv()
    assert flag(cluster.secondaries["s1"].spec.argv(), "delay") == ["0.5"]
    assert flag(cluster.secondaries["s2"].spec.argv(), "delay") == []


def test_the_secret_goes_to_every_node_in_a_private_file_and_into_the_headers(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, secret="s3cret")
    path = tmp_path / "cluster-secret"
    assert cluster.secret_file == path and path.read_text() == "s3cret\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for node in cluster.nodes.values():
        assert flag(node.spec.argv(), "cluster-secret-file") == [str(path)]
        assert not any("s3cret" in arg for arg in node.spec.argv()), "the secret never shows in ps"
    assert cluster.secret_headers() == {SECRET_HEADER: "s3cret"}
    assert LocalCluster(tmp_path / "other").secret_headers() == {}


def test_a_secret_file_is_made_private_even_if_it_existed(tmp_path: Path) -> None:
    path = tmp_path / "cluster-secret"
    path.write_text("old")
    path.chmod(0o644)
    LocalCluster(tmp_path, secret="new")
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_proxied_links_point_the_master_at_the_proxies(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, proxied=True)
    try:
        assert set(cluster.proxies) == {"s1", "s2"}
        links = flag(cluster.master.spec.argv(), "secondaries")[0].split(",")
        assert links == [f"http://127.0.0.1:{cluster.proxies[n].port}" for n in ("s1", "s2")]
        assert links == [cluster.link_url("s1"), cluster.link_url("s2")]
        assert cluster.link_url("s1") != cluster.secondaries["s1"].url
    finally:
        cluster.stop()  # closes the proxies' listening sockets; no node was started


def test_nodes_on_their_own_hosts_under_a_launcher_are_members_by_those_hosts(tmp_path: Path) -> None:
    hosts = {"master": "10.9.0.10", "s1": "10.9.0.11", "s2": "10.9.0.12"}
    launchers = {name: ("ip", "netns", "exec", f"ns-{name}") for name in hosts}
    cluster = LocalCluster(tmp_path, base_port=7000, cluster_mode=True, hosts=hosts, launchers=launchers)
    assert [n.url for n in cluster.nodes.values()] == ["http://10.9.0.10:7000", "http://10.9.0.11:7001",
                                                       "http://10.9.0.12:7002"]  # fmt: skip
    argv = cluster.secondaries["s1"].spec.argv()
    assert argv[:4] == ["ip", "netns", "exec", "ns-s1"]
    assert flag(argv, "host") == ["10.9.0.11"]
    assert flag(argv, "members") == [",".join(n.url for n in cluster.nodes.values())]

"""The image as users run it: one node per container on a user-defined network.

The assignment's acceptance test, a partition (`docker network disconnect`), a crash (`docker kill`),
a clean stop of the master and its restart on its volume, and quorum loss. Each test owns its
network, containers and volumes (see conftest.py); nothing here waits on a bare sleep.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
import requests

from .harness import DockerCluster, Node, docker, poll

# func_only: the per-test timeout does not cover the session's image build.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(600, func_only=True)]


def start_cluster(cluster: DockerCluster, *secondaries: str) -> tuple[Node, dict[str, Node]]:
    """Start the named secondaries and a master that knows s1 and s2; wait until it accepts writes."""
    nodes = {name: cluster.secondary(name) for name in secondaries}
    master = cluster.master(["s1", "s2"])
    for node in (*nodes.values(), master):
        node.wait_up()
    poll(lambda: master.health()["read_only"] is False, 60, "master writable")
    return master, nodes


class Writer(threading.Thread):
    """Writes `count` messages in order (w cycling through `ws`), each expected to be acknowledged."""

    def __init__(self, master: Node, prefix: str, count: int, ws: tuple[int, ...]) -> None:
        super().__init__(daemon=True, name=f"writer-{prefix}")
        self.master, self.prefix, self.count, self.ws = master, prefix, count, ws
        self.written: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for i in range(self.count):
                message = f"{self.prefix}-{i}"
                self.master.write(message, self.ws[i % len(self.ws)], timeout_s=90)
                self.written.append(message)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def wait_written(self, n: int, timeout_s: float = 90) -> None:
        poll(lambda: len(self.written) >= n or self.error is not None, timeout_s, f"{n} {self.prefix} writes")

    def finish(self, timeout_s: float = 180) -> list[str]:
        self.join(timeout_s)
        assert not self.is_alive(), f"writer {self.prefix} still running after {timeout_s}s"
        if self.error is not None:
            raise self.error
        return self.written


def test_assignment_acceptance(cluster: DockerCluster) -> None:
    """Start M + S1; Msg1 w=1, Msg2 w=2 ok; Msg3 w=3 waits; Msg4 w=1 ok; start S2; S2 has all four."""
    s2 = cluster.secondary("s2", start=False)  # created now, started later
    master, _ = start_cluster(cluster, "s1")

    assert master.post("Msg1", 1).status_code == 201
    assert master.post("Msg2", 2).status_code == 201
    with ThreadPoolExecutor(max_workers=1) as pool:
        msg3: Future[requests.Response] = pool.submit(master.post, "Msg3", 3, 180)
        poll(lambda: master.health()["waiting_writers"] == 1, 30, "Msg3 stored and waiting for w=3")
        msg4 = master.post("Msg4", 1)
        assert msg4.status_code == 201, msg4.text
        assert not msg3.done(), f"Msg3 w=3 returned before S2 started: {msg3.result().text}"
        assert master.health()["waiting_writers"] == 1, "Msg4 (w=1) answered while Msg3 still waits"

        s2.start()
        response = msg3.result(timeout=120)
        assert response.status_code == 201, response.text
        assert response.json()["seq"] == 3
    cluster.wait_converged(["Msg1", "Msg2", "Msg3", "Msg4"], ["s2", "master", "s1"])
    assert s2.messages() == ["Msg1", "Msg2", "Msg3", "Msg4"]


def test_network_partition_of_a_secondary_heals(cluster: DockerCluster) -> None:
    master, nodes = start_cluster(cluster, "s1", "s2")
    s1 = nodes["s1"]
    master.write("before", 3)

    writer = Writer(master, "cut", 40, ws=(1, 2))  # w=2 is met by s2 alone
    writer.start()
    writer.wait_written(5)
    s1.disconnect()
    writer.wait_written(30)
    poll(lambda: _secondary(master, s1)["status"] != "Healthy", 30, "master notices s1 is gone")
    s1.connect()
    written = writer.finish()

    expected = ["before", *written]
    cluster.wait_converged(expected)
    assert master.write("after", 3)["seq"] == len(expected) + 1
    cluster.wait_converged([*expected, "after"])


def test_killed_secondary_restarts_and_catches_up_exactly_once(cluster: DockerCluster) -> None:
    master, nodes = start_cluster(cluster, "s1", "s2")
    s1 = nodes["s1"]
    for i in range(5):
        master.write(f"first-{i}", 3)

    writer = Writer(master, "crash", 30, ws=(1, 2))
    writer.start()
    writer.wait_written(3)
    s1.kill()
    assert s1.wait_exited()["ExitCode"] == 137  # SIGKILL: no shutdown path ran
    writer.wait_written(20)
    s1.start()
    written = writer.finish()

    expected = [*(f"first-{i}" for i in range(5)), *written]
    cluster.wait_converged(expected)
    messages = s1.messages()
    assert len(messages) == len(set(messages)) == len(expected)


def test_master_stops_cleanly_and_keeps_its_log_on_its_volume(cluster: DockerCluster) -> None:
    master, nodes = start_cluster(cluster, "s1", "s2")
    written = [f"kept-{i}" for i in range(5)]
    for message in written:
        master.write(message, 3)
    nodes["s2"].stop()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future[requests.Response] = pool.submit(master.post, "pending", 3, 120)
        poll(lambda: "pending" in master.messages(), 30, "the w=3 write is stored and waiting")
        master.stop(timeout_s=10)
        state = master.state()
        # 0, not 137: it exited by itself on SIGTERM, before docker's 10 s SIGKILL
        assert state["ExitCode"] == 0, f"master exited {state['ExitCode']} on SIGTERM"
        answer = pending.result(timeout=30)  # the waiting client is answered, not left hanging
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "shutting_down"

    master.start()
    assert master.messages() == [*written, "pending"]  # durable: the log survived the restart
    cluster.wait_converged([*written, "pending"], ["master", "s1"])


def test_quorum_loss_makes_the_master_read_only_until_secondaries_return(cluster: DockerCluster) -> None:
    master, nodes = start_cluster(cluster, "s1", "s2")
    last_seq = max(master.write(f"q-{i}", 3)["seq"] for i in range(3))

    for node in nodes.values():
        node.stop()
    poll(lambda: master.health()["read_only"] is True, 60, "master read-only without a quorum")
    refused = master.post("refused", 1)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "read_only"
    assert int(refused.headers["Retry-After"]) >= 1
    assert "refused" not in master.messages()

    for node in nodes.values():
        node.start()
    poll(lambda: master.health()["read_only"] is False, 60, "master writable again")
    resumed = master.write("resumed", 3)
    assert resumed["seq"] == last_seq + 1  # the refused write consumed no seq
    cluster.wait_converged([*(f"q-{i}" for i in range(3)), "resumed"])


def _secondary(master: Node, node: Node) -> dict[str, Any]:
    health = master.health()
    [entry] = [s for s in health["secondaries"] if s["url"] == node.internal_url]
    return dict(entry)


def test_a_node_without_a_secret_refuses_to_start_and_one_with_it_guards_its_internal_endpoints(
    cluster: DockerCluster,
) -> None:
    """The image listens on 0.0.0.0: without a cluster secret anyone who reaches a secondary could
    write into its log, so it refuses to start unless REPLOG_INSECURE opts out."""
    bare = cluster.secondary("bare", secret=False)
    assert bare.wait_exited()["ExitCode"] == 2
    assert "REPLOG_CLUSTER_SECRET_FILE" in bare.logs() and "--insecure" in bare.logs()

    opted_out = cluster.secondary("optout", secret=False, REPLOG_INSECURE="1")
    opted_out.wait_up()
    assert "ANY MACHINE (--insecure)" in opted_out.logs()

    guarded = cluster.secondary("guarded")
    guarded.wait_up()
    head = {"epoch": 1, "prev_seq": 0, "prev_epoch": 0, "prev_crc": 0}
    batch = {"log_id": "L", **head, "first_seq": 1, "messages": ["x"]}
    assert requests.post(guarded.url + "/replicate", json=batch, timeout=5).status_code == 403
    headers = {"X-Replog-Secret": cluster.secret}
    assert requests.post(guarded.url + "/replicate", json=batch, headers=headers, timeout=5).json() == {
        "acked_seq": 1
    }
    assert cluster.secret not in json.dumps(docker_inspect(guarded)), "not in the container's env or args"


def docker_inspect(node: Node) -> Any:
    return json.loads(docker("inspect", node.container).stdout)


def test_the_image_serves_the_live_page_and_metrics(cluster: DockerCluster) -> None:
    """The page's static files are package data: they must be in the image, not only in the tree."""
    master, nodes = start_cluster(cluster, "s1")
    master.write("seen", 2)
    page = requests.get(master.url + "/", headers={"Accept": "text/html"}, timeout=5)
    assert page.status_code == 200 and "static/app.js" in page.text
    for name in ("app.js", "style.css"):
        assert master.get(f"/static/{name}").status_code == 200, name
    metrics = master.get("/metrics").text
    assert 'replog_appends_total{outcome="ok",w="2"} 1.0' in metrics
    assert "replog_fsync_duration_seconds_count" in metrics
    assert "replog_replicate_batches_applied_total" in nodes["s1"].get("/metrics").text

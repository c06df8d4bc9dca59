"""Cluster mode in process: three `ClusterNode`s on 127.0.0.1 elect a master and fail over."""

from __future__ import annotations

from pathlib import Path

import requests

from replog.testing.incluster import InProcessCluster
from tests.conftest import wait_for


def test_a_fresh_cluster_elects_its_first_master_at_epoch_2(tmp_path: Path) -> None:
    with InProcessCluster(tmp_path) as cluster:
        cluster.start()
        masters = wait_for(cluster.masters, 10, "a master")
        assert masters == ["n1"]  # the `master` node stands at once; the others wait a timeout
        health = cluster.health("n1")
        assert health["role"] == "master" and health["epoch"] == 2
        answer = requests.post(cluster.urls["n1"] + "/messages?w=majority", json={"message": "a"}, timeout=5)
        assert answer.status_code == 201, answer.text

"""compose.yaml's optional Prometheus: off unless asked for, scraping exactly the cluster's nodes.

Read as text (no YAML library in the project): the blocks are simple enough, and a renamed service
or a lost profile must fail here rather than in someone's dashboard.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def service_blocks() -> dict[str, str]:
    text = (ROOT / "compose.yaml").read_text()
    services = text.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0]
    parts = re.split(r"^  ([a-z0-9_-]+):\n", services, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_prometheus_runs_only_in_the_monitoring_profile_with_the_documented_config() -> None:
    prometheus = service_blocks()["prometheus"]
    assert 'profiles: ["monitoring"]' in prometheus, "a plain `up` must never pull the Prometheus image"
    assert "./docker/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus


def test_the_scrape_targets_are_every_node_service_on_its_container_port() -> None:
    nodes = {name for name, block in service_blocks().items() if "command: [\"master\"]" in block
             or "command: [\"secondary\"]" in block}  # fmt: skip
    config = (ROOT / "docker" / "prometheus.yml").read_text()
    targets = re.search(r"targets: \[(.*)\]", config)
    assert targets is not None
    assert {t.strip().strip('"') for t in targets.group(1).split(",")} == {f"{n}:8000" for n in nodes}
    assert nodes == {"master", "s1", "s2"}
    assert "metrics_path: /metrics" in config

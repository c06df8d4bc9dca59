"""A local cluster of real `python -m replog` processes that can be killed, paused and restarted.

Nodes are subprocesses (not threads) so that kill -9 and SIGSTOP hit exactly one node, the way a
crash or a stalled VM would. Each node keeps its data dir across restarts and appends its output
to one log file, so a run can be read back after the fact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from replog.chaos.proxy import LinkProxy
from replog.testing.cluster import NodeProcess, NodeSpec, Role, free_port

__all__ = ["Cluster", "Timing"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """Node timing flags, short so that faults are noticed within a run of a minute."""

    heartbeat_interval_s: float = 0.1
    suspect_after_s: float = 0.3
    unhealthy_after_s: float = 1.0
    # a blackholed or stopped secondary costs one full read timeout per attempt
    replicate_timeout_s: float = 2.0
    probe_timeout_s: float = 0.5

    def argv(self) -> list[str]:
        return [
            f"--heartbeat-interval={self.heartbeat_interval_s}",
            f"--suspect-after={self.suspect_after_s}",
            f"--unhealthy-after={self.unhealthy_after_s}",
            f"--replicate-timeout={self.replicate_timeout_s}",
            f"--probe-timeout={self.probe_timeout_s}",
        ]


class Cluster:
    """A master and its secondaries; with `proxied` each master->secondary link runs through a
    LinkProxy, so one link can be cut while both ends keep running."""

    def __init__(
        self,
        workdir: Path,
        *,
        secondaries: Sequence[str] = ("s1", "s2"),
        timing: Timing | None = None,
        secret: str | None = None,
        proxied: bool = True,
        master_argv: Sequence[str] = (),
        secondary_argv: Sequence[str] = (),
    ) -> None:
        self.timing = timing or Timing()
        self.secret = secret
        logs = workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        secret_argv = [f"--cluster-secret={secret}"] if secret else []
        self.secondaries: dict[str, NodeProcess] = {}
        self.proxies: dict[str, LinkProxy] = {}
        link_urls: list[str] = []
        for name in secondaries:
            spec = NodeSpec(
                name=name,
                role=Role.SECONDARY,
                port=free_port(),
                data_dir=workdir / "data" / name,
                extra_argv=(*secret_argv, *secondary_argv),
            )
            self.secondaries[name] = NodeProcess(spec, logs / f"{name}.log")
            if proxied:
                proxy = LinkProxy(target_port=spec.port, name=f"master-{name}")
                self.proxies[name] = proxy
                link_urls.append(f"http://127.0.0.1:{proxy.port}")
            else:
                link_urls.append(spec.url)
        master_spec = NodeSpec(
            name="master",
            role=Role.MASTER,
            port=free_port(),
            data_dir=workdir / "data" / "master",
            extra_argv=(
                f"--secondaries={','.join(link_urls)}",
                *self.timing.argv(),
                *secret_argv,
                *master_argv,
            ),
        )
        self.master = NodeProcess(master_spec, logs / "master.log")

    @property
    def nodes(self) -> dict[str, NodeProcess]:
        return {"master": self.master, **self.secondaries}

    def start(self, ready_timeout_s: float = 30.0) -> None:
        for proxy in self.proxies.values():
            proxy.start()
        for node in self.nodes.values():
            node.start()
        self.wait_ready(ready_timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        """Poll GET /health on every node until it answers 200, or raise with the laggards."""
        deadline = time.monotonic() + timeout_s
        waiting = dict(self.nodes)
        while waiting:
            for name, node in list(waiting.items()):
                if node.exit_code() is not None:
                    raise RuntimeError(f"node {name} exited with {node.exit_code()}; see its log")
                try:
                    if requests.get(f"{node.url}/health", timeout=0.5).status_code == 200:
                        del waiting[name]
                except requests.RequestException:
                    pass
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"nodes not ready after {timeout_s}s: {sorted(waiting)}")
            if waiting:
                time.sleep(0.05)

    def revive_crashed(self) -> list[str]:
        """Restart every node that exited on its own; returns 'name(exit code)' for each."""
        revived = []
        for name, node in self.nodes.items():
            code = node.died_unexpectedly()
            if code is not None:
                log.error("node exited unexpectedly node=%s exit_code=%d; restarting it", name, code)
                revived.append(f"{name}({code})")
                node.start()
        return revived

    def secret_headers(self) -> dict[str, str]:
        return {"X-Replog-Secret": self.secret} if self.secret else {}

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        for proxy in self.proxies.values():
            proxy.close()

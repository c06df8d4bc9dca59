"""`LocalCluster`: a master and named secondaries as real processes on 127.0.0.1.

The one way the rigs start a cluster: `run_cluster.py` (fixed ports 8000-8002), the multi-process
tests (free ports, short timings), the benchmark (pinned CPUs) and the fault run (a cuttable proxy
on each master->secondary link, a cluster secret, one log file per node). Nothing starts until
asked; each node keeps its data dir (`data_dir/NAME`) across restarts and, with a `log_dir`, appends
its output to `log_dir/NAME.log`. A cluster secret is written to `data_dir/cluster-secret` (mode
0600) and passed as `--cluster-secret-file`, so that it does not show in `ps`. Only the thread that
built the cluster drives it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from replog.client import ReplogClient, poll_until
from replog.net.transport import SECRET_HEADER
from replog.testing.process import NodeProcess, NodeSpec, Role, free_port, pinned
from replog.testing.proxy import LinkProxy

__all__ = ["LocalCluster", "NodeProcess", "NodeSpec", "Role", "free_port", "pinned", "write_secret_file"]

log = logging.getLogger(__name__)

MASTER = "master"
SECRET_FILE = "cluster-secret"


def write_secret_file(path: Path, secret: str) -> Path:
    """Write `secret` to `path`, readable by its owner only (0600, also when it already existed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, secret.encode() + b"\n")
    finally:
        os.close(fd)
    return path


class LocalCluster:
    """A master and its secondaries, each a `NodeProcess`; with `proxied` the master reaches each
    secondary through a `LinkProxy`, so one link can be cut while both ends keep running."""

    def __init__(
        self,
        data_dir: Path,
        *,
        secondaries: Mapping[str, Sequence[str]] | Sequence[str] = ("s1", "s2"),
        master_argv: Sequence[str] = (),
        common_argv: Sequence[str] = (),
        base_port: int | None = None,
        log_dir: Path | None = None,
        proxied: bool = False,
        secret: str | None = None,
        pin: bool = False,
        cluster_mode: bool = False,
        hosts: Mapping[str, str] | None = None,
        launchers: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """`secondaries`: names, or names with each one's own extra argv. `base_port`: the master
        listens on it and the secondaries on the next ports, in order; None picks free ports.
        `common_argv` goes to every node; a node's own argv comes last, so it wins. `log_dir` None
        lets the nodes write to this process's stdout and stderr. `pin`: see `pinned`.
        `cluster_mode`: every node gets `--members` (all of them; not with `proxied`) and they elect
        their master; the node named `master` only stands first (see `current_master`).
        `hosts`/`launchers`: a node's own listen address and the command it runs under (the fault
        run puts each node in its own network namespace: `ip netns exec NS`); 127.0.0.1 and none
        by default."""
        hosts, launchers = hosts or {}, launchers or {}
        own = dict(secondaries) if isinstance(secondaries, Mapping) else {n: () for n in secondaries}
        self.secret = secret
        self.secret_file = None if secret is None else write_secret_file(data_dir / SECRET_FILE, secret)
        self.log_dir = log_dir
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
        shared = (*common_argv, *((f"--cluster-secret-file={self.secret_file}",) if self.secret_file else ()))

        ports = [free_port() if base_port is None else base_port + i for i in range(len(own) + 1)]

        def port(index: int) -> int:
            return ports[index]

        def process(name: str, role: Role, index: int, argv: Sequence[str]) -> NodeProcess:
            extra = (*shared, *(pinned(role) if pin else ()), *argv)
            spec = NodeSpec(
                name, role, port(index), data_dir / name, extra,
                hosts.get(name, "127.0.0.1"), tuple(launchers.get(name, ())),
            )  # fmt: skip
            return NodeProcess(spec, None if log_dir is None else log_dir / f"{name}.log")

        if cluster_mode:
            names = [MASTER, *own]
            urls = (f"http://{hosts.get(n, '127.0.0.1')}:{p}" for n, p in zip(names, ports, strict=True))
            shared = (*shared, f"--members={','.join(urls)}")
        self.secondaries: dict[str, NodeProcess] = {
            name: process(name, Role.SECONDARY, index, argv)
            for index, (name, argv) in enumerate(own.items(), start=1)
        }
        self.proxies: dict[str, LinkProxy] = (
            {n: LinkProxy(target_port=s.spec.port, name=f"master-{n}") for n, s in self.secondaries.items()}
            if proxied
            else {}
        )
        links = ",".join(self.link_url(name) for name in self.secondaries)
        peers = () if cluster_mode else (f"--secondaries={links}",)
        self.master = process(MASTER, Role.MASTER, 0, (*peers, *master_argv))
        self.client = ReplogClient(self.master.url, request_timeout_s=30, secret=secret)
        self._proxies_started = False

    @property
    def nodes(self) -> dict[str, NodeProcess]:
        """Every node by name, the master first."""
        return {MASTER: self.master, **self.secondaries}

    def link_url(self, name: str) -> str:
        """The URL the master knows secondary `name` by: its proxy's when proxied."""
        proxy = self.proxies.get(name)
        return f"http://127.0.0.1:{proxy.port}" if proxy else self.secondaries[name].url

    def _chosen(self, names: Sequence[str]) -> list[NodeProcess]:
        return [self.nodes[n] for n in names] if names else list(self.nodes.values())

    # lifecycle -----------------------------------------------------------------------------------
    def start(self, *names: str, timeout_s: float = 30.0) -> None:
        """Start the named nodes (all by default) and wait until each answers /health."""
        if not self._proxies_started:
            for proxy in self.proxies.values():
                proxy.start()
            self._proxies_started = True
        chosen = self._chosen(names)
        for node in chosen:
            node.start()
        self.wait_healthy(*(n.name for n in chosen), timeout_s=timeout_s)

    def up(self, timeout_s: float = 30.0) -> LocalCluster:
        """Start every node and wait until the master accepts writes."""
        self.start(timeout_s=timeout_s)
        self.wait_writable(timeout_s)
        return self

    def kill(self, name: str) -> None:
        self.nodes[name].kill()

    def pause(self, name: str) -> None:
        self.nodes[name].pause()

    def resume(self, name: str) -> None:
        self.nodes[name].resume()

    def stop(self, *names: str) -> None:
        """Stop the named nodes gracefully; with no names, every node and every proxy (teardown)."""
        for node in self._chosen(names):
            node.stop()
        if not names:
            for proxy in self.proxies.values():
                proxy.close()
            self.client.close()

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

    # waiting ------------------------------------------------------------------------------------
    def wait_healthy(self, *names: str, timeout_s: float = 30.0) -> None:
        """Poll GET /health on the named nodes (all by default) until each answers; raise
        RuntimeError at once if one exits, TimeoutError naming the laggards at the deadline."""
        deadline = time.monotonic() + timeout_s
        waiting = {node.name: node for node in self._chosen(names)}
        probes = {name: ReplogClient(node.url, request_timeout_s=0.5) for name, node in waiting.items()}
        try:
            while waiting:
                for name, node in list(waiting.items()):
                    if node.exit_code() is not None:
                        raise RuntimeError(f"node {name} exited with {node.exit_code()}{self._see_log(name)}")
                    with contextlib.suppress(Exception):  # any failure means "not up yet"
                        probes[name].health()
                        del waiting[name]
                if waiting and time.monotonic() >= deadline:
                    raise TimeoutError(f"nodes not answering /health after {timeout_s}s: {sorted(waiting)}")
                if waiting:
                    time.sleep(0.02)
        finally:
            for probe in probes.values():
                probe.close()

    def wait_writable(self, timeout_s: float = 10.0) -> None:
        """Poll the master's /health until it has a quorum (not read-only)."""
        poll_until(lambda: not self.client.health()["read_only"], timeout_s, 0.02, "master writable")

    def wait_health(
        self, condition: Callable[[dict[str, Any]], bool], timeout_s: float = 10.0
    ) -> dict[str, Any]:
        """Poll the master's /health until `condition` holds for one answer; return that answer."""

        def matched() -> dict[str, Any] | None:
            health = self.client.health()
            return health if condition(health) else None

        return poll_until(matched, timeout_s, 0.01, "master /health matched")

    def wait_converged(self, timeout_s: float = 20.0) -> list[str]:
        """Poll until every running node shows the master's log; return it."""

        def same() -> list[str] | None:
            expected = self.messages(MASTER)
            live = [n for n, node in self.nodes.items() if node.alive]
            return expected if all(self.messages(n) == expected for n in live) else None

        return poll_until(same, timeout_s, 0.05, "all nodes converged")

    def current_master(self, timeout_s: float = 30.0, *, exclude: Sequence[str] = ()) -> str:
        """Cluster mode: poll the running nodes until exactly one says it is master and takes writes;
        its name. `exclude`: nodes not to ask (paused ones, whose answer would never come)."""

        def one() -> str | None:
            found = []
            for name, node in self.nodes.items():
                if name in exclude or not node.alive or node.paused:
                    continue
                with contextlib.suppress(Exception):
                    health = ReplogClient(node.url, request_timeout_s=0.5).health()
                    if health.get("role") == "master" and health.get("read_only") is False:
                        found.append(name)
            return found[0] if len(found) == 1 else None

        return poll_until(one, timeout_s, 0.05, "one writable master")

    # reading -------------------------------------------------------------------------------------
    def messages(self, name: str) -> list[str]:
        return ReplogClient(self.nodes[name].url, request_timeout_s=5).messages()

    def secondary_status(self, name: str) -> str:
        """`Healthy`, `Suspected` or `Unhealthy`: secondary `name` as the master sees it."""
        url = self.link_url(name)
        return str(next(s["status"] for s in self.client.health()["secondaries"] if s["url"] == url))

    def secret_headers(self) -> dict[str, str]:
        """Headers an internal endpoint (POST /faults, /replicate) of this cluster requires."""
        return {SECRET_HEADER: self.secret} if self.secret else {}

    def log_path(self, name: str) -> Path:
        if self.log_dir is None:
            raise ValueError("this cluster's nodes write to stdout: no log files")
        return self.log_dir / f"{name}.log"

    def log_text(self, name: str) -> str:
        return self.log_path(name).read_text(errors="replace")

    def _see_log(self, name: str) -> str:
        return "" if self.log_dir is None else f"; see {self.log_path(name)}"

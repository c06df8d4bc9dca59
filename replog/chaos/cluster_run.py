"""One cluster-mode fault run end to end: three nodes that elect their master, each in its own
network namespace when this process may make them (so the master can be cut from everyone);
writers through `replog.client` and readers; a seeded schedule of master and other faults; heal,
converge, read every node's log, roles.jsonl and rollback.jsonl, check, and leave
history.jsonl, final.json, roles.json, rollback.json and verdict.json behind.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replog.chaos.checker import CheckerConfig, check
from replog.chaos.cluster import Timing
from replog.chaos.cluster_checks import (
    ClusterEvidence,
    RoleRecord,
    RolledBack,
    role_from_dict,
    rolled_back_from_dict,
)
from replog.chaos.cluster_faults import ClusterInjector, make_cluster_schedule
from replog.chaos.cluster_workload import ClusterReader, ClusterWriter, ClusterWriterConfig
from replog.chaos.history import FaultEvent, FaultPhase, FinalEntry, dump_final
from replog.chaos.report import verdict_to_dict
from replog.chaos.runner import RunResult, wait_supervising
from replog.chaos.workload import Recorder
from replog.client import ReplogClient, poll_until
from replog.storage.roles import ROLES_FILE, read_roles
from replog.storage.rollback import ROLLBACK_FILE
from replog.testing.cluster import LocalCluster
from replog.testing.netns import NetnsSwitch, NetnsUnavailable, unavailable

__all__ = ["ClusterRunConfig", "ClusterTiming", "run_cluster_mode"]

log = logging.getLogger(__name__)

NAMES = ("master", "s1", "s2")  # LocalCluster's names; `master` only stands first
PORT = 7000  # every node has its own address in its namespace
PAGE = 1000


@dataclass(frozen=True)
class ClusterTiming(Timing):
    """Static runs' short timings, plus the election's: a run of a minute sees several failovers."""

    election_min_s: float = 1.5  # also the master's lease
    election_max_s: float = 3.0

    def argv(self) -> list[str]:
        election = f"--election-timeout={self.election_min_s},{self.election_max_s}"
        return [*super().argv(), election, "--connect-timeout=0.5"]


@dataclass(frozen=True)
class ClusterRunConfig:
    out_dir: Path
    duration_s: float = 60.0
    seed: int = 7
    writers: int = 6
    readers: int = 1
    timing: ClusterTiming = field(default_factory=ClusterTiming)
    client_timeout_s: float = 5.0
    converge_timeout_s: float = 60.0
    netns: bool | None = None  # None: when this process can make namespaces; False: no cut faults
    clock_tolerance_s: float = 0.005


def _cluster(cfg: ClusterRunConfig, netns: NetnsSwitch | None) -> LocalCluster:
    hosts = {n: netns.host(n) for n in NAMES} if netns else None
    launchers = {n: netns.launcher(n) for n in NAMES} if netns else None
    return LocalCluster(
        cfg.out_dir / "data",
        secondaries=NAMES[1:],
        common_argv=tuple(cfg.timing.argv()),
        base_port=PORT if netns else None,
        log_dir=cfg.out_dir / "logs",
        secret=secrets.token_hex(16),
        cluster_mode=True,
        hosts=hosts,
        launchers=launchers,
    )


def _read_log(url: str) -> tuple[FinalEntry, ...]:
    """Every entry of a node, control records included, following pages of GET /entries."""
    entries: list[FinalEntry] = []
    client = ReplogClient(url, request_timeout_s=10.0)
    try:
        while True:  # bounded: every page moves past the last seq read
            next_seq = entries[-1].seq + 1 if entries else 1
            page = client.entries(next_seq, PAGE)
            if not page:
                return tuple(entries)
            if int(page[0]["seq"]) < next_seq:
                raise ValueError(f"{url}/entries answered seq {page[0]['seq']} for from_seq={next_seq}")
            entries.extend(
                FinalEntry(
                    int(e["seq"]),
                    str(e["message"]),
                    float(e["stored_at"]),
                    int(e.get("epoch", 1)),
                    str(e.get("kind", "message")),
                )
                for e in page
            )
    finally:
        client.close()


def _last(url: str) -> tuple[int, int] | None:
    client = ReplogClient(url, request_timeout_s=1.0)
    try:
        last = client.health().get("last") or {}
    finally:
        client.close()
    return (int(last["seq"]), int(last["epoch"])) if "seq" in last else None


def _converge(cluster: LocalCluster, timeout_s: float) -> str | None:
    """Wait (bounded) until one writable master exists and every node's last (seq, epoch) is its
    own, twice in a row; the master's name, or None at the deadline (the checker then judges the
    logs as they are)."""
    deadline = time.monotonic() + timeout_s

    def settled() -> str | None:
        master = cluster.current_master(1.0)
        lasts = {name: _last(node.url) for name, node in cluster.nodes.items()}
        return master if len(set(lasts.values())) == 1 else None

    seen: str | None = None
    while time.monotonic() < deadline:
        try:
            now = poll_until(settled, max(0.1, deadline - time.monotonic()), 0.25, "logs converged")
        except TimeoutError:
            break
        if now == seen:
            log.info("converged master=%s", now)
            return now
        seen = now
        time.sleep(0.5)
    log.warning("not converged after %.0fs", timeout_s)
    return None


def _evidence(cluster: LocalCluster, majority: int) -> ClusterEvidence:
    roles: dict[str, tuple[RoleRecord, ...]] = {}
    rollbacks: dict[str, tuple[RolledBack, ...]] = {}
    for name, node in cluster.nodes.items():
        roles[name] = tuple(role_from_dict(line) for line in read_roles(node.spec.data_dir / ROLES_FILE))
        path = node.spec.data_dir / ROLLBACK_FILE
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        rollbacks[name] = tuple(rolled_back_from_dict(json.loads(line)) for line in lines if line.strip())
    urls = {name: node.url for name, node in cluster.nodes.items()}
    return ClusterEvidence(majority=majority, urls=urls, roles=roles, rollbacks=rollbacks)


def _schedule(
    cfg: ClusterRunConfig,
    cluster: LocalCluster,
    netns: NetnsSwitch | None,
    recorder: Recorder,
    stop: threading.Event,
    exits: list[str],
) -> int:
    rng = random.Random(cfg.seed)
    t = cfg.timing
    schedule = make_cluster_schedule(
        rng, cfg.duration_s, t.election_max_s, t.election_min_s, cut=netns is not None
    )
    injector = ClusterInjector(cluster, netns, random.Random(f"{cfg.seed}-targets"))
    start = time.monotonic()
    applied = 0
    try:
        for fault in schedule:
            if wait_supervising(cluster, stop, start + fault.at_s, exits):
                break
            targets = injector.targets(fault)
            if targets is None:
                continue
            recorder.record(FaultEvent(time.time(), fault.kind.value, ",".join(targets), FaultPhase.START))
            injector.apply(fault, targets)
            applied += 1
            wait_supervising(cluster, stop, time.monotonic() + fault.duration_s, exits)
            injector.heal(fault, targets)
            recorder.record(FaultEvent(time.time(), fault.kind.value, ",".join(targets), FaultPhase.END))
        wait_supervising(cluster, stop, start + cfg.duration_s, exits)
    finally:
        exits.extend(cluster.revive_crashed())
        injector.heal_all()
    return applied


def _netns(cfg: ClusterRunConfig) -> NetnsSwitch | None:
    if cfg.netns is False:
        log.warning("no network namespaces: the cut faults are left out")
        return None
    reason = unavailable()
    if reason is not None:
        if cfg.netns:
            raise NetnsUnavailable(reason)
        log.warning("no network namespaces (%s): the cut faults are left out", reason)
        return None
    return NetnsSwitch(NAMES).setup()


def run_cluster_mode(cfg: ClusterRunConfig) -> RunResult:
    """Run, check, write the files. Raises if the cluster cannot even start."""
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    if (cfg.out_dir / "data").exists():
        raise FileExistsError(f"{cfg.out_dir} holds a previous run's data; use a fresh --out")
    recorder = Recorder(cfg.out_dir / "history.jsonl")
    stop_clients = threading.Event()
    exits: list[str] = []
    majority = len(NAMES) // 2 + 1
    netns = _netns(cfg)
    try:
        cluster = _cluster(cfg, netns)
        try:
            cluster.start()
            first = cluster.current_master(30.0)
            urls = {name: node.url for name, node in cluster.nodes.items()}
            log.info(
                "cluster up seed=%d master=%s nodes=%s netns=%s", cfg.seed, first, urls, netns is not None
            )
            wcfg = ClusterWriterConfig(urls=urls, majority=majority, client_timeout_s=cfg.client_timeout_s)
            clients: list[threading.Thread] = [
                ClusterWriter(p, wcfg, random.Random(f"{cfg.seed}-{p}"), recorder, stop_clients)
                for p in range(cfg.writers)
            ]
            clients += [
                ClusterReader(urls, random.Random(f"{cfg.seed}-r{r}"), recorder, stop_clients)
                for r in range(cfg.readers)
            ]
            for client in clients:
                client.start()
            try:
                faults = _schedule(cfg, cluster, netns, recorder, stop_clients, exits)
            finally:
                stop_clients.set()
                for client in clients:
                    client.join(timeout=cfg.client_timeout_s + 5.0)
            master = _converge(cluster, cfg.converge_timeout_s)
            exits.extend(cluster.revive_crashed())
            final = {name: _read_log(node.url) for name, node in cluster.nodes.items()}
        finally:
            stop_clients.set()
            cluster.stop()
            recorder.close()
        evidence = _evidence(cluster, majority)
    finally:
        if netns is not None:
            netns.teardown()
    reference = master or max(final, key=lambda n: len(final[n]))
    (cfg.out_dir / "final.json").write_text(json.dumps(dump_final(final)), encoding="utf-8")
    (cfg.out_dir / "roles.json").write_text(
        json.dumps({n: [r.__dict__ for r in rs] for n, rs in evidence.roles.items()}), encoding="utf-8"
    )
    (cfg.out_dir / "rollback.json").write_text(
        json.dumps({n: [r.__dict__ for r in rs] for n, rs in evidence.rollbacks.items()}), encoding="utf-8"
    )
    verdict = check(
        recorder.events(),
        final,
        CheckerConfig(master=reference, clock_tolerance_s=cfg.clock_tolerance_s),
        evidence,
    )
    summary: dict[str, Any] = verdict_to_dict(verdict)
    summary.update(
        mode="cluster",
        seed=cfg.seed,
        duration_s=cfg.duration_s,
        converged=master is not None,
        final_master=master,
        netns=netns is not None,
        faults_applied=faults,
        unexpected_exits=exits,
    )
    (cfg.out_dir / "verdict.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log.info("fault run done out=%s ok=%s", cfg.out_dir, verdict.ok)
    return RunResult(
        verdict=verdict,
        converged=master is not None,
        faults=faults,
        out_dir=cfg.out_dir,
        unexpected_exits=tuple(exits),
    )

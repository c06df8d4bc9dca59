"""One fault run end to end: start a cluster, write under a seeded fault schedule, heal, converge,
read every node, check, and leave history.jsonl, final.json and verdict.json behind."""

from __future__ import annotations

import enum
import json
import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from replog.chaos.checker import CheckerConfig, Verdict, check
from replog.chaos.cluster import Timing, fault_cluster
from replog.chaos.faults import (
    FaultInjector,
    LinkCut,
    ProxyCut,
    SigstopCut,
    make_schedule,
)
from replog.chaos.history import FaultEvent, FaultPhase, FinalEntry, dump_final
from replog.chaos.report import verdict_to_dict
from replog.chaos.workload import HealthPoller, Recorder, Writer, WriterConfig
from replog.testing.cluster import LocalCluster

__all__ = ["PartitionMode", "RunConfig", "RunResult", "read_entries", "run", "wait_supervising"]

log = logging.getLogger(__name__)

PAGE = 1000


class PartitionMode(enum.Enum):
    PROXY = "proxy"  # cut only the master<->secondary link (both ends keep running)
    SIGSTOP = "sigstop"  # stop the secondary: every link to it is cut


@dataclass(frozen=True)
class RunConfig:
    out_dir: Path
    duration_s: float = 60.0
    seed: int = 7
    writers: int = 6
    timing: Timing = field(default_factory=Timing)
    partition: PartitionMode = PartitionMode.PROXY
    client_timeout_s: float = 10.0
    converge_timeout_s: float = 60.0
    use_secret: bool = True  # nodes require the cluster secret on internal endpoints
    master_argv: tuple[str, ...] = ()
    secondary_argv: tuple[str, ...] = ()
    clock_tolerance_s: float = 0.005
    # secondaries answer 500 after applying this share of batches all run long (dedup under load)
    baseline_error_rate: float = 0.05


@dataclass(frozen=True)
class RunResult:
    verdict: Verdict
    converged: bool
    faults: int
    out_dir: Path
    # nodes that exited without being killed by the schedule: a crash is a failure of the run
    unexpected_exits: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verdict.ok and self.converged and not self.unexpected_exits


def read_entries(url: str, timeout_s: float = 5.0) -> tuple[FinalEntry, ...]:
    """Every visible entry of a node, following pages of GET /entries."""
    entries: list[FinalEntry] = []
    next_seq = 1
    with requests.Session() as session:
        while True:
            resp = session.get(
                f"{url}/entries",
                params={"from_seq": next_seq, "limit": PAGE},
                timeout=timeout_s,
            )
            resp.raise_for_status()
            page = resp.json()["entries"]
            if not page:
                return tuple(entries)
            entries.extend(FinalEntry(int(e["seq"]), str(e["message"]), float(e["stored_at"])) for e in page)
            next_seq = entries[-1].seq + 1


def _has_seq(url: str, seq: int) -> bool:
    try:
        resp = requests.get(f"{url}/entries", params={"from_seq": seq, "limit": 1}, timeout=2.0)
        page = resp.json().get("entries", []) if resp.status_code == 200 else []
    except (requests.RequestException, ValueError):
        return False
    return bool(page) and int(page[0]["seq"]) == seq


def _last_seq(url: str) -> int:
    """The node's last visible seq: `stored_seq` from one small page if the node reports it,
    else by reading every page."""
    resp = requests.get(f"{url}/entries", params={"from_seq": 1, "limit": 1}, timeout=2.0)
    resp.raise_for_status()
    body = resp.json()
    if isinstance(body.get("stored_seq"), int):
        return int(body["stored_seq"])
    entries = read_entries(url)
    return entries[-1].seq if entries else 0


def _converge(cluster: LocalCluster, timeout_s: float) -> bool:
    """Wait until every secondary shows the master's last seq. Writers have stopped, but the
    master's log can still grow: a request that reached a paused master is served on resume."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            last = _last_seq(cluster.master.url)
            if all(_has_seq(n.url, last) for n in cluster.secondaries.values()) or last == 0:
                time.sleep(0.5)
                if _last_seq(cluster.master.url) == last:
                    log.info("converged last_seq=%d", last)
                    return True
        except (requests.RequestException, ValueError, KeyError) as exc:
            log.debug("convergence poll failed error=%s", exc)
        if time.monotonic() > deadline:
            log.warning("not converged after %.0fs", timeout_s)
            return False
        time.sleep(0.25)


def wait_supervising(cluster: LocalCluster, stop: threading.Event, until: float, exits: list[str]) -> bool:
    """Wait until the monotonic time `until` (or stop), restarting nodes that die on their own."""
    while True:
        exits.extend(cluster.revive_crashed())
        left = until - time.monotonic()
        if left <= 0:
            return stop.is_set()
        if stop.wait(min(left, 0.2)):
            return True


def _run_schedule(
    cfg: RunConfig, cluster: LocalCluster, recorder: Recorder, stop: threading.Event, exits: list[str]
) -> int:
    rng = random.Random(cfg.seed)
    schedule = make_schedule(rng, cfg.duration_s, tuple(cluster.secondaries), cfg.timing.unhealthy_after_s)
    cut: LinkCut = ProxyCut(cluster) if cfg.partition is PartitionMode.PROXY else SigstopCut(cluster)
    injector = FaultInjector(cluster, cut, baseline_error_rate=cfg.baseline_error_rate)
    start = time.monotonic()
    applied = 0
    try:
        for fault in schedule:
            if wait_supervising(cluster, stop, start + fault.at_s, exits):
                break
            recorder.record(FaultEvent(time.time(), fault.kind.value, fault.target, FaultPhase.START))
            injector.apply(fault)
            applied += 1
            wait_supervising(cluster, stop, time.monotonic() + fault.duration_s, exits)
            injector.heal(fault)
            recorder.record(FaultEvent(time.time(), fault.kind.value, fault.target, FaultPhase.END))
        wait_supervising(cluster, stop, start + cfg.duration_s, exits)
    finally:
        exits.extend(cluster.revive_crashed())
        injector.heal_all()
    return applied


def run(cfg: RunConfig) -> RunResult:
    """Run, check, write the three files. Raises if the cluster cannot even start."""
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    if (cfg.out_dir / "data").exists():
        raise FileExistsError(f"{cfg.out_dir} holds a previous run's data; use a fresh --out")
    cluster = fault_cluster(
        cfg.out_dir,
        timing=cfg.timing,
        secret=secrets.token_hex(16) if cfg.use_secret else None,
        proxied=cfg.partition is PartitionMode.PROXY,
        master_argv=cfg.master_argv,
        secondary_argv=(f"--error-rate={cfg.baseline_error_rate}", *cfg.secondary_argv),
    )
    recorder = Recorder(cfg.out_dir / "history.jsonl")
    stop_writers, stop_poller = threading.Event(), threading.Event()
    exits: list[str] = []
    try:
        cluster.start()
        log.info(
            "cluster up seed=%d duration=%.0fs nodes=%s",
            cfg.seed,
            cfg.duration_s,
            {n: x.url for n, x in cluster.nodes.items()},
        )
        poller = HealthPoller(cluster.master.url, recorder, stop_poller)
        wcfg = WriterConfig(master_url=cluster.master.url, client_timeout_s=cfg.client_timeout_s)
        writers = [
            Writer(p, wcfg, random.Random(f"{cfg.seed}-{p}"), recorder, stop_writers)
            for p in range(cfg.writers)
        ]
        poller.start()
        for writer in writers:
            writer.start()
        try:
            faults = _run_schedule(cfg, cluster, recorder, stop_writers, exits)
        finally:
            stop_writers.set()
            for writer in writers:
                writer.join(timeout=cfg.client_timeout_s + 5.0)
        converged = _converge(cluster, cfg.converge_timeout_s)
        exits.extend(cluster.revive_crashed())
        stop_poller.set()
        poller.join(timeout=5.0)
        final = {name: read_entries(node.url) for name, node in cluster.nodes.items()}
    finally:
        stop_writers.set()
        stop_poller.set()
        cluster.stop()
        recorder.close()
    (cfg.out_dir / "final.json").write_text(json.dumps(dump_final(final)), encoding="utf-8")
    checker_cfg = CheckerConfig(
        clock_tolerance_s=cfg.clock_tolerance_s,
        read_only_max_gap_s=cfg.timing.unhealthy_after_s,
    )
    verdict = check(recorder.events(), final, checker_cfg)
    summary: dict[str, Any] = verdict_to_dict(verdict)
    summary.update(
        seed=cfg.seed,
        duration_s=cfg.duration_s,
        converged=converged,
        faults_applied=faults,
        unexpected_exits=exits,
    )
    (cfg.out_dir / "verdict.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return RunResult(
        verdict=verdict,
        converged=converged,
        faults=faults,
        out_dir=cfg.out_dir,
        unexpected_exits=tuple(exits),
    )

"""How many hostile connections a master withstands while /health and a w=1 append answer within 1 s.

    .venv/bin/python bench/hostile_bench.py                       # idle, slowloris, spooling floods
    .venv/bin/python bench/hostile_bench.py --kinds slowloris --counts 1000,4000 \
        --master-argv=--connection-limit=8192

Starts a local cluster (master + 2 secondaries, durable, default flags), then for each kind of flood
and each count opens that many sockets to the master from this process (slowloris ones dribble a
header byte every second), and meanwhile times `--samples` GET /health and w=1 appends, each on a
fresh connection as a new client would. A count is withstood when every sample answered within
`--within` seconds. It also reports how many of the flood's sockets the node closed (evictions at
its connection limit, request and idle timeouts) and the node's open descriptors. Everything runs
on this machine: the attacker competes with the node for the same cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from replog.testing.cluster import LocalCluster
from replog.testing.hostile import Flood, allow_open_files, append_within, health_within, open_descriptors

KINDS = ("idle", "slowloris", "spooling")


def open_flood(flood: Flood, kind: str, count: int) -> None:
    if kind == "idle":
        flood.open_idle(count)
    elif kind == "slowloris":
        flood.open_slowloris(count)
    else:
        flood.open_spooling(count)


def measure(cluster: LocalCluster, kind: str, count: int, samples: int, within_s: float) -> dict[str, Any]:
    url = cluster.master.url
    with Flood(cluster.master.spec.port) as flood:
        started = time.monotonic()
        open_flood(flood, kind, count)
        opened_s = time.monotonic() - started
        stop = threading.Event()

        def dribble() -> None:
            while not stop.wait(1.0):
                flood.dribble()

        dribbler = threading.Thread(target=dribble, daemon=True)
        if kind == "slowloris":
            dribbler.start()
        try:
            health = [health_within(url, 10.0) for _ in range(samples)]
            appends = [append_within(url, 10.0, f"bench-{kind}-{count}-{i}") for i in range(samples)]
        finally:
            stop.set()
            if dribbler.is_alive():
                dribbler.join()
        assert cluster.master.pid is not None
        descriptors = open_descriptors(cluster.master.pid)
        closed = flood.count_closed()
    answered = [s for s in health + appends if s is not None]
    worst = max(answered) if len(answered) == len(health) + len(appends) else None
    return {
        "kind": kind,
        "connections": count,
        "refused_connects": flood.refused,
        "closed_by_node": closed,
        "master_descriptors": descriptors,
        "open_s": round(opened_s, 2),
        "health_max_ms": None if None in health else round(max(h for h in health if h) * 1000, 1),
        "append_max_ms": None if None in appends else round(max(a for a in appends if a) * 1000, 1),
        "withstood": worst is not None and worst <= within_s,
    }


def settle(cluster: LocalCluster) -> None:
    """Wait until the master answers quickly again after a flood was closed."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        took = health_within(cluster.master.url, 5.0)
        if took is not None and took < 0.1:
            return
    raise TimeoutError("the master did not settle after the flood")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--counts", default="500,1000,2000,4000,8000,16000")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--within", type=float, default=1.0, help="answer deadline, seconds")
    parser.add_argument("--master-argv", action="append", default=[], help="extra master flag (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    allow_open_files(max(counts) + 1024)
    rows = []
    with tempfile.TemporaryDirectory(prefix="replog-hostile-") as tmp:
        cluster = LocalCluster(Path(tmp), master_argv=tuple(args.master_argv), log_dir=Path(tmp) / "logs")
        try:
            cluster.up()
            for kind in args.kinds.split(","):
                for count in counts:
                    row = measure(cluster, kind, count, args.samples, args.within)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    settle(cluster)
        finally:
            cluster.stop()
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

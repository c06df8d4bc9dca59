#!/usr/bin/env python3
"""Run a local replog cluster: a master and two secondaries on 127.0.0.1 (ports 8000-8002).

    python run_cluster.py            # start the cluster; Ctrl-C stops it
    python run_cluster.py --demo     # play the assignment's self-check acceptance test, then stop
    python run_cluster.py --failover # cluster mode: the three nodes elect their master (kill -9 it!)

Each node keeps its durable log in its own directory under --data-dir (default ./replog-data);
--clean starts from empty logs. The demo always uses a fresh temporary directory.

The nodes share a random cluster secret, which their internal endpoints (POST /replicate, POST
/faults) require: it is kept in DATA_DIR/cluster-secret (mode 0600, reused by the next run) and
passed with --cluster-secret-file, so it never shows in `ps`. --insecure runs without one.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from replog.client import ReplogClient, ReplogHTTPError, poll_until
from replog.testing.cluster import SECRET_FILE, LocalCluster

DEMO_TIMINGS = ("--heartbeat-interval=0.2", "--suspect-after=0.6", "--unhealthy-after=1.5")
EXPECTED = ["Msg1", "Msg2", "Msg3", "Msg4"]


def cluster_secret(data_dir: Path, insecure: bool) -> str | None:
    """The secret this cluster used before (its file in data_dir), else a new random one; None with
    --insecure."""
    if insecure:
        return None
    path = data_dir / SECRET_FILE
    if path.is_file():
        existing = path.read_text().strip()
        if existing:
            return existing
    return secrets.token_urlsafe(32)


def build_cluster(args: argparse.Namespace, data_dir: Path, log_dir: Path | None) -> LocalCluster:
    """The master on --base-port, s1 and s2 on the next two ports; `log_dir` None: output here."""
    faults = () if args.failover else (f"--delay={args.delay}", f"--error-rate={args.error_rate}")
    memory = ("--in-memory",) if args.in_memory else ()
    return LocalCluster(
        data_dir,
        secondaries={"s1": faults, "s2": faults},
        master_argv=DEMO_TIMINGS if args.demo else (),
        # Cluster mode: every node may become master, so every node gets the master's timings.
        common_argv=(*memory, *DEMO_TIMINGS) if args.failover else memory,
        cluster_mode=args.failover,
        base_port=args.base_port,
        log_dir=log_dir,
        pin=args.pin,
        secret=cluster_secret(data_dir, args.insecure),
    )


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def demo_passed(held: dict[str, list[str]], msg3: dict[str, Any]) -> bool:
    """The verdict: every node holds Msg1..Msg4 in order, and Msg3's w=3 answer came (seq 3, three
    acks). Either alone is not enough: S2 can hold Msg3 while its client got an error or nothing."""
    everywhere = bool(held) and all(h == EXPECTED for h in held.values())
    return everywhere and msg3.get("seq") == 3 and msg3.get("acks") == 3


def demo(cluster: LocalCluster) -> int:
    """The assignment's self-check: start M + S1; Msg1 w=1, Msg2 w=2, Msg3 w=3 waits, Msg4 w=1; start S2."""
    step("start M + S1")
    cluster.start("s1", "master")
    cluster.wait_writable()
    client = cluster.client
    for message, w in (("Msg1", 1), ("Msg2", 2)):
        print(f"send ({message}, w={w}) -> {client.append(message, w)}", flush=True)

    step("send (Msg3, w=3): waits, S2 is not running")
    result: dict[str, Any] = {}

    def send_msg3() -> None:
        try:
            result.update(ReplogClient(cluster.master.url).append("Msg3", 3))
        except (ReplogHTTPError, OSError) as exc:
            result["error"] = str(exc)

    waiter = threading.Thread(target=send_msg3, name="msg3", daemon=True)
    waiter.start()
    health = cluster.wait_health(lambda h: h["waiting_writers"] >= 1 or not waiter.is_alive())
    print(
        f"Msg3 still waiting: {waiter.is_alive()} (master: waiting_writers={health['waiting_writers']})",
        flush=True,
    )

    step("send (Msg4, w=1) while Msg3 waits")
    print(f"send (Msg4, w=1) -> {client.append('Msg4', 1)}", flush=True)

    step("start S2")
    cluster.start("s2")
    waiter.join(30.0)
    print(f"Msg3 answered once S2 caught up -> {result}", flush=True)

    step("check messages on every node")
    s2 = ReplogClient(cluster.secondaries["s2"].url)
    try:
        poll_until(lambda: s2.messages() == EXPECTED, 10, 0.05, "S2 holds all four")
    except TimeoutError as exc:
        print(exc, flush=True)
    held: dict[str, list[str]] = {}
    for name, node in cluster.nodes.items():
        held[name] = ReplogClient(node.url).messages()
        print(f"{name:6} {node.url}  {held[name]}", flush=True)
    print(f"\nhealth: {client.health()['secondaries']}", flush=True)
    passed = demo_passed(held, result)
    print("\nDEMO PASSED" if passed else "\nDEMO FAILED", flush=True)
    return 0 if passed else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--demo", action="store_true", help="play the acceptance test on a fresh cluster")
    parser.add_argument(
        "--base-port", type=int, default=8000, help="master port; secondaries take the next two"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path("replog-data"), help="parent of each node's log"
    )
    parser.add_argument("--clean", action="store_true", help="delete the nodes' logs before starting")
    parser.add_argument("--in-memory", action="store_true", help="keep logs in memory only")
    parser.add_argument(
        "--pin", action="store_true", help="pin the master to one CPU and the secondaries to another"
    )
    parser.add_argument("--delay", type=float, default=0.0, help="secondaries' injected delay, seconds")
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="secondaries' chance of a 500 after append"
    )
    parser.add_argument(
        "--failover",
        action="store_true",
        help="cluster mode: the nodes elect their master (the first stands first) and fail over",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="no cluster secret: anyone who reaches a node may call its internal endpoints",
    )
    args = parser.parse_args()
    if args.failover and (args.demo or args.delay or args.error_rate):
        parser.error("--failover runs the cluster only: not with --demo, --delay or --error-rate")

    temp = Path(tempfile.mkdtemp(prefix="replog-demo-")) if args.demo else None
    data_dir = temp if temp is not None else args.data_dir
    if args.clean and data_dir.exists():
        shutil.rmtree(data_dir)
    cluster = build_cluster(args, data_dir, log_dir=temp)
    nodes = cluster.nodes
    if cluster.secret_file is not None:
        print(
            f"cluster secret: {cluster.secret_file} (send it as X-Replog-Secret to POST /faults)",
            flush=True,
        )
    try:
        if args.demo:
            print(f"node logs: {temp}/*.log", flush=True)
            return demo(cluster)
        print(f"data: {data_dir.resolve()}/{{master,s1,s2}}; Ctrl-C stops the cluster", flush=True)
        cluster.start()
        print(f"master {nodes['master'].url}  s1 {nodes['s1'].url}  s2 {nodes['s2'].url}", flush=True)
        if args.failover:
            pids = "  ".join(f"{name}={node.pid}" for name, node in nodes.items())
            print(f"cluster mode: master is {cluster.current_master()}; pids {pids}", flush=True)
            print("kill -9 the master's pid: another is elected (see any node's /health)", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        running = any if args.failover else all  # cluster mode carries on without a node
        try:
            while not stop.wait(0.5) and running(n.alive for n in nodes.values()):
                pass
        except KeyboardInterrupt:
            pass
        return 0
    except (ReplogHTTPError, TimeoutError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Run a local replog cluster: a master and two secondaries on 127.0.0.1 (ports 8000-8002).

    python run_cluster.py            # start the cluster; Ctrl-C stops it
    python run_cluster.py --demo     # play the assignment's self-check acceptance test, then stop

Each node keeps its durable log in its own directory under --data-dir (default ./replog-data);
--clean starts from empty logs. The demo always uses a fresh temporary directory.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from replog.client import ReplogClient, ReplogHTTPError, poll_until
from replog.testing.cluster import NodeProcess, NodeSpec, Role, pinned

DEMO_TIMINGS = ["--heartbeat-interval=0.2", "--suspect-after=0.6", "--unhealthy-after=1.5"]


def build_nodes(args: argparse.Namespace, data_dir: Path, log_dir: Path | None) -> dict[str, NodeProcess]:
    ports = {"master": args.base_port, "s1": args.base_port + 1, "s2": args.base_port + 2}
    common = ["--in-memory"] if args.in_memory else []
    secondary_faults = [f"--delay={args.delay}", f"--error-rate={args.error_rate}"]
    nodes: dict[str, NodeProcess] = {}
    pin = pinned(Role.SECONDARY) if args.pin else ()
    for name in ("s1", "s2"):
        spec = NodeSpec(
            name, Role.SECONDARY, ports[name], data_dir / name, (*common, *secondary_faults, *pin)
        )
        nodes[name] = NodeProcess(spec, None if log_dir is None else log_dir / f"{name}.log")
    secondaries = ",".join(f"http://127.0.0.1:{ports[n]}" for n in ("s1", "s2"))
    master_argv = (
        f"--secondaries={secondaries}",
        *common,
        *(DEMO_TIMINGS if args.demo else ()),
        *(pinned(Role.MASTER) if args.pin else ()),
    )
    spec = NodeSpec("master", Role.MASTER, ports["master"], data_dir / "master", master_argv)
    nodes["master"] = NodeProcess(spec, None if log_dir is None else log_dir / "master.log")
    return nodes


def wait_healthy(node: NodeProcess, timeout_s: float = 30.0) -> None:
    client = ReplogClient(node.url, request_timeout_s=1.0)
    poll_until(client.health, timeout_s, 0.05, f"{node.name} answering /health")


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def demo(nodes: dict[str, NodeProcess]) -> int:
    """The assignment's self-check: start M + S1; Msg1 w=1, Msg2 w=2, Msg3 w=3 waits, Msg4 w=1; start S2."""
    master, s1, s2 = nodes["master"], nodes["s1"], nodes["s2"]
    step("start M + S1")
    s1.start()
    master.start()
    for node in (s1, master):
        wait_healthy(node)
    client = ReplogClient(master.url)
    poll_until(lambda: not client.health()["read_only"], 10, 0.05, "quorum (master + S1)")
    for message, w in (("Msg1", 1), ("Msg2", 2)):
        print(f"send ({message}, w={w}) -> {client.append(message, w)}", flush=True)

    step("send (Msg3, w=3): waits, S2 is not running")
    result: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: result.update(ReplogClient(master.url).append("Msg3", 3)))
    waiter.start()
    waiter.join(1.0)
    print(f"Msg3 still waiting after 1 s: {waiter.is_alive()}", flush=True)

    step("send (Msg4, w=1) while Msg3 waits")
    print(f"send (Msg4, w=1) -> {client.append('Msg4', 1)}", flush=True)

    step("start S2")
    s2.start()
    waiter.join(30.0)
    print(f"Msg3 answered once S2 caught up -> {result}", flush=True)

    step("check messages on every node")
    expected = ["Msg1", "Msg2", "Msg3", "Msg4"]
    poll_until(lambda: ReplogClient(s2.url).messages() == expected, 10, 0.05, "S2 holds all four")
    ok = True
    for name, node in nodes.items():
        held = ReplogClient(node.url).messages()
        ok &= held == expected
        print(f"{name:6} {node.url}  {held}", flush=True)
    print(f"\nhealth: {client.health()['secondaries']}", flush=True)
    print("\nDEMO PASSED" if ok and result.get("seq") == 3 else "\nDEMO FAILED", flush=True)
    return 0 if ok else 1


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
    args = parser.parse_args()

    temp = Path(tempfile.mkdtemp(prefix="replog-demo-")) if args.demo else None
    data_dir = temp if temp is not None else args.data_dir
    if args.clean and data_dir.exists():
        shutil.rmtree(data_dir)
    nodes = build_nodes(args, data_dir, log_dir=temp)
    try:
        if args.demo:
            print(f"node logs: {temp}/*.log", flush=True)
            return demo(nodes)
        print(f"data: {data_dir.resolve()}/{{master,s1,s2}}; Ctrl-C stops the cluster", flush=True)
        for node in nodes.values():
            node.start()
        for node in nodes.values():
            wait_healthy(node)
        print(f"master {nodes['master'].url}  s1 {nodes['s1'].url}  s2 {nodes['s2'].url}", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5) and all(n.alive for n in nodes.values()):
                pass
        except KeyboardInterrupt:
            pass
        return 0
    except (ReplogHTTPError, TimeoutError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for node in nodes.values():
            node.stop()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""How long a cluster-mode cluster takes to take writes again after `kill -9` of its master.

    python bench/failover_time.py                      # 5 trials with run_cluster --failover timings
    python bench/failover_time.py --unhealthy-after 6  # the defaults: election 9-18 s

Each trial starts a fresh three-node cluster in cluster mode, waits for a writable master, appends
one entry with w=majority, kills the master with SIGKILL and then appends with w=majority through
`replog.client` against a surviving node (which follows a 421 to the master) until one is answered
201: the time from the kill to that 201 is the failover time. Prints each trial, the median and
the max. Not a test: it prints numbers for the notes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from replog.client import ReplogClient, ReplogHTTPError
from replog.testing.cluster import LocalCluster


def trial(root: Path, argv: tuple[str, ...], deadline_s: float) -> float:
    cluster = LocalCluster(root, secondaries=("s1", "s2"), common_argv=argv, log_dir=root, cluster_mode=True)
    try:
        cluster.start()
        first = cluster.current_master(60)
        ReplogClient(cluster.nodes[first].url).append("before", "majority")
        survivor = next(name for name in cluster.nodes if name != first)
        client = ReplogClient(cluster.nodes[survivor].url, request_timeout_s=5)
        cluster.kill(first)
        killed = time.monotonic()
        while time.monotonic() - killed < deadline_s:
            try:
                client.append("after", "majority", timeout_s=2)
                return time.monotonic() - killed
            except (ReplogHTTPError, OSError):
                time.sleep(0.01)  # a benchmark's retry loop, not a test's wait
        raise TimeoutError(f"no w=majority 201 within {deadline_s}s of the kill")
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--heartbeat-interval", type=float, default=0.2)
    parser.add_argument("--suspect-after", type=float, default=0.6)
    parser.add_argument("--unhealthy-after", type=float, default=1.5)
    args = parser.parse_args()
    argv = (
        "--in-memory",
        f"--heartbeat-interval={args.heartbeat_interval}",
        f"--suspect-after={args.suspect_after}",
        f"--unhealthy-after={args.unhealthy_after}",
    )
    times = []
    for index in range(args.trials):
        with tempfile.TemporaryDirectory(prefix="replog-failover-") as root:
            seconds = trial(Path(root), argv, deadline_s=10 * args.unhealthy_after + 30)
        times.append(seconds)
        print(f"trial {index + 1}: {seconds:.2f} s", flush=True)
    print(f"{' '.join(argv[1:])}: median {statistics.median(times):.2f} s, max {max(times):.2f} s")


if __name__ == "__main__":
    main()

"""How long a cluster-mode cluster takes to take writes again after `kill -9` of its master.

    python bench/failover_time.py                      # 5 trials with cluster mode's default timings
    python bench/failover_time.py --unhealthy-after 6  # static mode's 6 s: election 9-18 s

The trial itself lives in `replog.bench.failover` (`python -m replog.bench --scenarios failover`
runs it with the defaults and with a 0.1 s heartbeat); this script runs it with any timings.
Prints each trial, the median and the max. Not a test: it prints numbers for the notes.
"""

from __future__ import annotations

import argparse
import statistics

from replog.bench.failover import Timings, trials


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--heartbeat-interval", type=float, default=0.2)
    parser.add_argument("--suspect-after", type=float, default=0.6)
    parser.add_argument("--unhealthy-after", type=float, default=1.5)
    args = parser.parse_args()
    timings = Timings(args.heartbeat_interval, args.suspect_after, args.unhealthy_after)
    times = trials(timings, args.trials, lambda i, s: print(f"trial {i + 1}: {s:.2f} s", flush=True))
    print(f"{' '.join(timings.argv())}: median {statistics.median(times):.2f} s, max {max(times):.2f} s")


if __name__ == "__main__":
    main()

"""`python -m replog.chaos --duration 60 --seed 7 [--out DIR] [--cluster-mode]`: one fault run, exit 1 on
any anomaly. `--cluster-mode`: three nodes that elect their master, with faults on the master."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from replog.chaos.cluster import Timing
from replog.chaos.cluster_run import ClusterRunConfig, run_cluster_mode
from replog.chaos.report import render_summary
from replog.chaos.runner import PartitionMode, RunConfig, RunResult, run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m replog.chaos", description=__doc__)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of faults and writes")
    p.add_argument("--seed", type=int, default=7, help="seeds the fault schedule and the writers")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for history, final reads, verdict, logs",
    )
    p.add_argument("--writers", type=int, default=6, help="concurrent client threads")
    p.add_argument(
        "--partition",
        choices=[m.value for m in PartitionMode],
        default=PartitionMode.PROXY.value,
        help="proxy: blackhole one master->secondary link; sigstop: stop the secondary instead",
    )
    p.add_argument("--heartbeat-interval", type=float, default=Timing.heartbeat_interval_s)
    p.add_argument("--suspect-after", type=float, default=Timing.suspect_after_s)
    p.add_argument("--unhealthy-after", type=float, default=Timing.unhealthy_after_s)
    p.add_argument(
        "--client-timeout",
        type=float,
        default=10.0,
        help="seconds before an append is indeterminate",
    )
    p.add_argument(
        "--converge-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for catch-up after healing",
    )
    p.add_argument(
        "--error-rate", type=float, default=0.05, help="secondaries' baseline chance of a 500 after applying"
    )
    p.add_argument(
        "--no-secret",
        action="store_true",
        help="run the nodes without --cluster-secret",
    )
    p.add_argument(
        "--master-arg",
        action="append",
        default=[],
        help="extra flag for the master (repeatable)",
    )
    p.add_argument(
        "--secondary-arg",
        action="append",
        default=[],
        help="extra flag for each secondary (repeatable)",
    )
    p.add_argument(
        "--cluster-mode",
        action="store_true",
        help="three nodes elect their master (--members); master faults and failovers",
    )
    p.add_argument(
        "--netns",
        choices=("auto", "yes", "no"),
        default="auto",
        help="cluster mode: each node in its own network namespace (root), so the master can be cut",
    )
    p.add_argument("--readers", type=int, default=1, help="cluster mode: reader threads")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    out = args.out or Path(tempfile.gettempdir()) / f"replog-chaos-{args.seed}-{int(time.time())}"
    if args.cluster_mode:
        result = run_cluster_mode(
            ClusterRunConfig(
                out_dir=out,
                duration_s=args.duration,
                seed=args.seed,
                writers=args.writers,
                readers=args.readers,
                client_timeout_s=min(args.client_timeout, 5.0),
                converge_timeout_s=args.converge_timeout,
                netns={"auto": None, "yes": True, "no": False}[args.netns],
            )
        )
        return _report(result)
    cfg = RunConfig(
        out_dir=out,
        duration_s=args.duration,
        seed=args.seed,
        writers=args.writers,
        timing=Timing(args.heartbeat_interval, args.suspect_after, args.unhealthy_after),
        partition=PartitionMode(args.partition),
        client_timeout_s=args.client_timeout,
        converge_timeout_s=args.converge_timeout,
        use_secret=not args.no_secret,
        baseline_error_rate=args.error_rate,
        master_argv=tuple(args.master_arg),
        secondary_argv=tuple(args.secondary_arg),
    )
    return _report(run(cfg))


def _report(result: RunResult) -> int:
    sys.stdout.write(render_summary(result.verdict) + "\n")
    if result.unexpected_exits:
        sys.stdout.write(f"nodes exited unexpectedly (restarted): {', '.join(result.unexpected_exits)}\n")
    if not result.converged:
        sys.stdout.write("secondaries did not catch up with the master before the deadline\n")
    sys.stdout.write(f"history, final reads and verdict in {result.out_dir}\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

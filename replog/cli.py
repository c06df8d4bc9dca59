"""`python -m replog master|secondary`: the only place that reads argv and the environment.

Every flag has an environment twin (`--heartbeat-interval` <-> `REPLOG_HEARTBEAT_INTERVAL`), so a
container is configured with env alone. SIGTERM and SIGINT stop the node cleanly with exit code 0;
a fatal failure (the master's own log cannot be read) stops it with exit code 1, and a node whose
HTTP server loop dies exits with 1, so that a supervisor restarts it.

Secure by default: a node listening on anything but a loopback address refuses to start without a
cluster secret (`--cluster-secret-file`, or `--cluster-secret`, which `ps` shows), unless the
operator opts out with `--insecure`: otherwise anyone who reaches a secondary can write its log.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import resource
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from replog import cli_client, logs
from replog.cluster.node import ClusterNode
from replog.config import (
    ELECTION_TIMEOUT_FACTORS,
    ClusterConfig,
    Faults,
    LinkConfig,
    MasterConfig,
    SecondaryConfig,
    ServerConfig,
    StorageConfig,
    find_member,
)
from replog.core.backoff import BackoffPolicy
from replog.core.dedup import WindowPolicy
from replog.core.fsync import FsyncPolicy
from replog.core.health import HealthPolicy
from replog.core.urls import duplicate_nodes
from replog.node import MasterNode, SecondaryNode
from replog.web.server import fds_wanted

ROLES = ("master", "secondary")
NodeConfig = MasterConfig | SecondaryConfig | ClusterConfig
Node = MasterNode | SecondaryNode | ClusterNode
FAILED_STOP_S = 10.0  # a node whose server loop died gets this long to stop cleanly, then exits anyway
log = logging.getLogger(__name__)


def _env_name(flag: str) -> str:
    return "REPLOG_" + flag.lstrip("-").replace("-", "_").upper()


def _flag(
    parser: argparse.ArgumentParser, flag: str, kind: Callable[[str], Any], default: Any, help_text: str
) -> None:
    env = _env_name(flag)
    raw = os.environ.get(env)
    try:
        value = kind(raw) if raw not in (None, "") else default
    except argparse.ArgumentTypeError as exc:  # the flag's own message, naming the env twin
        raise ValueError(f"{env}: {exc}") from None
    parser.add_argument(
        flag,
        type=kind,
        default=value,
        help=f"{help_text} [env {env}; default {default}]",
    )


def _switch(parser: argparse.ArgumentParser, flag: str, help_text: str) -> None:
    env = _env_name(flag)
    on = os.environ.get(env, "").lower() in ("1", "true", "yes", "on")
    parser.add_argument(flag, action="store_true", default=on, help=f"{help_text} [env {env}]")


def _fsync_policy(raw: str) -> FsyncPolicy:
    """--fsync into its enum; argparse prints the message (naming the choices) and exits 2."""
    try:
        return FsyncPolicy.parse(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _log_format(raw: str) -> str:
    if raw not in logs.FORMATS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(logs.FORMATS)}, got {raw!r}")
    return raw


def _urls(raw: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in raw.split(",") if u.strip())  # kept as given: /health shows them


STATIC_HEALTH_DEFAULTS = (1.0, 3.0, 6.0)  # --heartbeat-interval, --suspect-after, --unhealthy-after
CLUSTER_HEALTH_DEFAULTS = (0.2, 0.6, 1.5)  # with --members: election timeout 2.25..4.5 s


def _timeouts(raw: str) -> tuple[float, float]:
    """--election-timeout MIN,MAX (seconds)."""
    parts = [p.strip() for p in raw.split(",")]
    try:
        low, high = (float(parts[0]), float(parts[1])) if len(parts) == 2 else (0.0, -1.0)
    except ValueError:
        low, high = 0.0, -1.0
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"must be MIN,MAX seconds with 0 < MIN <= MAX, got {raw!r}")
    return low, high


def cluster_mode(argv: Sequence[str]) -> bool:
    """Whether a member list is given (flag or env): the node then runs in cluster mode."""
    given = any(a == "--members" or a.startswith("--members=") for a in argv)
    return given or bool(os.environ.get(_env_name("--members"), "").strip())


def build_parser(role: str, cluster: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m replog {role}", description=f"Run a replog {role}.")
    default_port = 8000 if role == "master" else 8001
    _flag(parser, "--host", str, "127.0.0.1", "address to listen on")
    _flag(parser, "--port", int, default_port, "port to listen on (0 picks a free one)")
    _flag(parser, "--name", str, role, "node name shown in logs and /health")
    _flag(parser, "--data-dir", Path, None, "directory of the durable log (default: replog-data/NAME)")
    _switch(parser, "--in-memory", "keep the log in memory only; it is lost on restart")
    _flag(
        parser,
        "--fsync",
        _fsync_policy,
        FsyncPolicy.ALWAYS,
        "always | interval | never: when entries reach the disk",
    )
    _flag(parser, "--fsync-interval", float, 0.005, "seconds between fsyncs with --fsync interval")
    _flag(parser, "--cache-bytes", int, 16 * 1024 * 1024, "bytes of recent entries kept in memory")
    _flag(parser, "--storage-retry", float, 1.0, "seconds between checks of a failed (e.g. full) disk")
    _flag(parser, "--cluster-secret", str, None, "shared token internal endpoints require (shows in ps)")
    _flag(
        parser,
        "--cluster-secret-file",
        Path,
        None,
        "file holding the cluster secret (a Docker/Kubernetes secret); surrounding whitespace ignored",
    )
    _switch(parser, "--insecure", "allow a non-loopback --host without a cluster secret")
    _flag(parser, "--threads", int, 128, "HTTP worker threads (each waiting writer holds one)")
    _flag(parser, "--connection-limit", int, 4096, "open connections at most (lowered to fit ulimit -n)")
    _flag(parser, "--request-timeout", float, 10.0, "seconds a client may take to send one request")
    _flag(parser, "--idle-timeout", float, 30.0, "seconds a kept-alive connection may stay idle")
    _flag(parser, "--max-body-bytes", int, 8 * 1024 * 1024, "largest accepted request body")
    _flag(parser, "--max-message-bytes", int, 1024 * 1024, "largest appended message, UTF-8 bytes")
    _flag(parser, "--cpu", int, None, "pin this node's threads to one CPU (opt-in; faster on 2 cores)")
    _flag(parser, "--log-level", str, "INFO", "DEBUG | INFO | WARNING | ERROR")
    _flag(parser, "--log-format", _log_format, "text", "text | json (one JSON object per line)")
    _switch(parser, "--no-metrics", "turn off GET /metrics and its hooks (to measure what they cost)")
    _flag(parser, "--max-followers", int, 256, "followers (streams, long polls) at once, own threads")
    _flag(parser, "--follow-keepalive", float, 15.0, "seconds between keep-alive comments on an idle stream")
    _flag(parser, "--dedup-window-keys", int, 100_000, "idempotency keys remembered at most")
    _flag(parser, "--dedup-window-s", float, 3600.0, "seconds an idempotency key is remembered")
    _flag(parser, "--members", _urls, (), "cluster mode: every member's URL, this node's included")
    if cluster:
        _flag(parser, "--advertise-url", str, None, "this node's URL as in --members (default http://HOST:PORT)")
        _flag(
            parser,
            "--election-timeout",
            _timeouts,
            None,
            "MIN,MAX seconds of silence from a master before standing (default 1.5x..3x --unhealthy-after)",
        )
    if role == "master" and not cluster:
        _flag(parser, "--secondaries", _urls, (), "comma-separated secondary URLs, e.g. http://s1:8000")
    if role == "master" or cluster:
        # Cluster mode probes faster by default: the election timeout follows --unhealthy-after, and
        # failover should take seconds (measured: median 3.2 s with these), not the 9-18 s that
        # static mode's calmer defaults would give.
        beat, suspect, unhealthy = CLUSTER_HEALTH_DEFAULTS if cluster else STATIC_HEALTH_DEFAULTS
        _flag(parser, "--heartbeat-interval", float, beat, "seconds between health probes")
        _flag(parser, "--suspect-after", float, suspect, "seconds of silence before Suspected")
        _flag(parser, "--unhealthy-after", float, unhealthy, "seconds of silence before Unhealthy")
        _flag(parser, "--probe-timeout", float, 1.0, "read timeout of one health probe, seconds")
        _flag(parser, "--connect-timeout", float, 1.0, "connect timeout to a secondary, seconds")
        _flag(parser, "--replicate-timeout", float, 10.0, "read timeout of one batch, seconds")
        _flag(parser, "--retry-base", float, 0.05, "first retry delay, seconds (doubles per attempt)")
        _flag(parser, "--retry-max", float, 2.0, "longest retry delay, seconds")
        _flag(parser, "--batch-max-entries", int, 10_000, "most entries in one replication batch")
        _flag(parser, "--batch-max-bytes", int, 4 * 1024 * 1024, "most bytes in one replication batch")
    else:
        _flag(parser, "--delay", float, 0.0, "fault injection: seconds to wait before applying a batch")
        _flag(parser, "--error-rate", float, 0.0, "fault injection: chance of a 500 after applying a batch")
    return parser


def _positive(value: float, flag: str) -> None:
    if value <= 0:
        raise ValueError(f"{flag} must be > 0, got {value}")


def _common(args: argparse.Namespace) -> tuple[ServerConfig, StorageConfig]:
    for value, flag in (
        (args.connection_limit, "--connection-limit"),
        (args.request_timeout, "--request-timeout"),
        (args.idle_timeout, "--idle-timeout"),
        (args.max_body_bytes, "--max-body-bytes"),
        (args.max_message_bytes, "--max-message-bytes"),
        (args.follow_keepalive, "--follow-keepalive"),
    ):
        _positive(value, flag)
    if args.max_followers < 0:
        raise ValueError(f"--max-followers must be >= 0, got {args.max_followers}")
    server = ServerConfig(
        host=args.host,
        port=args.port,
        threads=args.threads,
        connection_limit=args.connection_limit,
        max_body_bytes=args.max_body_bytes,
        max_message_bytes=args.max_message_bytes,
        request_timeout_s=args.request_timeout,
        idle_timeout_s=args.idle_timeout,
        max_followers=args.max_followers,
        follow_keepalive_s=args.follow_keepalive,
    )
    data_dir = None if args.in_memory else (args.data_dir or Path("replog-data") / args.name)
    storage = StorageConfig(
        data_dir=data_dir, fsync=args.fsync, fsync_interval_s=args.fsync_interval,
        cache_bytes=args.cache_bytes, retry_s=args.storage_retry,
        dedup=WindowPolicy(args.dedup_window_keys, args.dedup_window_s),
    )  # fmt: skip
    return server, storage


def is_loopback(host: str) -> bool:
    """Only 127.0.0.0/8, ::1 and "localhost": any other name may resolve to a reachable address."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def cluster_secret(args: argparse.Namespace) -> str | None:
    """The secret from --cluster-secret-file or --cluster-secret (never both); enforce the rule that
    a node reachable from other machines has one unless --insecure."""
    if args.cluster_secret and args.cluster_secret_file:
        raise ValueError("give --cluster-secret or --cluster-secret-file, not both")
    secret: str | None = args.cluster_secret or None
    if args.cluster_secret_file:
        path = args.cluster_secret_file
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--cluster-secret-file {path}: cannot read it: {exc}") from None
        if not secret:
            raise ValueError(f"--cluster-secret-file {path} is empty")
    if secret is not None and not (secret.isascii() and secret.isprintable() and secret == secret.strip()):
        raise ValueError("the cluster secret must be printable ASCII without surrounding spaces")
    if secret is None and not args.insecure and not is_loopback(args.host):
        raise ValueError(
            f"--host {args.host} is reachable from other machines, and without a cluster secret anyone "
            "who reaches this node can write into its log: give --cluster-secret-file (or "
            "--cluster-secret, or REPLOG_CLUSTER_SECRET_FILE), or --insecure (REPLOG_INSECURE=1) to "
            "run without one"
        )
    return secret


def master_config(args: argparse.Namespace) -> MasterConfig:
    server, storage = _common(args)
    if not args.secondaries:
        raise SystemExit("--secondaries (or REPLOG_SECONDARIES) must name at least one secondary URL")
    return MasterConfig(
        secondaries=args.secondaries,
        name=args.name,
        server=server,
        storage=storage,
        link=_link(args),
        health=HealthPolicy(args.suspect_after, args.unhealthy_after),
        heartbeat_interval_s=args.heartbeat_interval,
        cluster_secret=cluster_secret(args),
        metrics=not args.no_metrics,
    )


def _link(args: argparse.Namespace) -> LinkConfig:
    return LinkConfig(
        connect_timeout_s=args.connect_timeout,
        replicate_timeout_s=args.replicate_timeout,
        probe_timeout_s=args.probe_timeout,
        batch_max_entries=args.batch_max_entries,
        batch_max_bytes=args.batch_max_bytes,
        backoff=BackoffPolicy(base_s=args.retry_base, cap_s=args.retry_max),
    )


def cluster_config(args: argparse.Namespace, role: str) -> ClusterConfig:
    """Cluster mode: the member list, which of them this node is, and the election timeouts."""
    server, storage = _common(args)
    members: tuple[str, ...] = args.members
    if len(members) < 2:
        raise ValueError("--members must name every member, this node included (at least 2 URLs)")
    twice = duplicate_nodes(members)
    if twice:
        raise ValueError("--members names a node twice: " + "; ".join(f"{b!r} is {a!r}" for a, b in twice))
    advertise = args.advertise_url or f"http://{args.host}:{args.port}"
    me = find_member(advertise, members)
    health = HealthPolicy(args.suspect_after, args.unhealthy_after)
    low, high = args.election_timeout or tuple(f * args.unhealthy_after for f in ELECTION_TIMEOUT_FACTORS)
    master = MasterConfig(
        secondaries=tuple(m for m in members if m != me),
        name=args.name,
        server=server,
        storage=storage,
        link=_link(args),
        health=health,
        heartbeat_interval_s=args.heartbeat_interval,
        cluster_secret=cluster_secret(args),
        metrics=not args.no_metrics,
    )
    return ClusterConfig(me, members, master, first_role=role, election_min_s=low, election_max_s=high)


def secondary_config(args: argparse.Namespace) -> SecondaryConfig:
    server, storage = _common(args)
    return SecondaryConfig(
        name=args.name,
        server=server,
        storage=storage,
        faults=Faults(delay_s=args.delay, error_rate=args.error_rate),
        cluster_secret=cluster_secret(args),
        metrics=not args.no_metrics,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in cli_client.COMMANDS:
        return cli_client.main(argv)
    role = argv.pop(0) if argv and argv[0] in ROLES else os.environ.get("REPLOG_ROLE", "")
    if role not in ROLES:
        print(
            "usage: replog {master|secondary} [--help]  (or set REPLOG_ROLE)\n"
            "       replog {send|tail|status} [--help]",
            file=sys.stderr,
        )
        return 2
    try:
        cluster = cluster_mode(argv)
        args = build_parser(role, cluster).parse_args(argv)
        config: NodeConfig
        if cluster:
            config = cluster_config(args, role)
        else:
            config = (master_config if role == "master" else secondary_config)(args)
    except ValueError as exc:
        print(f"replog: bad configuration: {exc}", file=sys.stderr)
        return 2
    logs.configure(args.log_level, args.log_format, args.name)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # before any thread starts, so all of them inherit it
    return run(config)


def raise_open_files_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE toward `wanted`, at most to the hard limit; return the soft one.

    Python starts with the soft limit it inherits (often 1024) though the hard one is usually far
    higher; `HttpServer` then sizes its connection limit to what it gets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, exc)
            return soft
        return target
    return soft


def run(config: NodeConfig) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("node=%s got %s; stopping", config.name, signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if config.storage.data_dir is None:
        log.warning("node=%s log is in memory only (--in-memory): it is lost on restart", config.name)
    else:
        log.info("node=%s data_dir=%s fsync=%s", config.name, config.storage.data_dir, config.storage.fsync)
    if config.cluster_secret is None:
        reach = "any client" if is_loopback(config.server.host) else "ANY MACHINE (--insecure)"
        log.warning("node=%s no --cluster-secret: %s can call internal endpoints", config.name, reach)
    open_files = raise_open_files_limit(fds_wanted(config.server.connection_limit))
    log.info("node=%s open_files_limit=%d", config.name, open_files)
    try:
        node: Node
        if isinstance(config, ClusterConfig):
            node = ClusterNode(config)
        elif isinstance(config, MasterConfig):
            node = MasterNode(config)
        else:
            node = SecondaryNode(config)
    except Exception as exc:
        log.error("node=%s cannot start: %s", config.name, exc)
        return 1
    node.start()
    while not stop.wait(0.5) and node.fatal_reason is None:
        if node.server.failed.is_set():
            return _exit_after_server_death(config.name, node)
    node.stop()
    return 0 if node.fatal_reason is None else 1  # the node logged the reason at ERROR


def _exit_after_server_death(name: str, node: Node) -> int:
    """The node can no longer answer: stop what can be stopped (the final fsync included), within a
    bound, and exit 1 so that a supervisor (Docker's restart policy, systemd) starts it afresh."""
    log.error(
        "node=%s exiting with code 1: the HTTP server loop died (%r); nothing can reach this node "
        "any more, a supervisor should restart it",
        name,
        node.server.failure,
    )
    stopper = threading.Thread(target=node.stop, name="stop-after-failure", daemon=True)
    stopper.start()
    stopper.join(FAILED_STOP_S)
    if stopper.is_alive():
        log.error("node=%s did not stop within %.0fs; exiting anyway", name, FAILED_STOP_S)
        logging.shutdown()
        os._exit(1)
    return 1

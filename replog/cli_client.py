"""`replog send | tail | status`: the client side of the `replog` command, over `replog.client`.

    replog send "a message" [-w 2]           # one message; prints its seq
    replog send --file messages.txt          # one message per line, in bulk requests
    producer | replog send -                 # the same from stdin
    replog tail [-f] [--from-seq N] [-n 10]  # the last entries (or from N), and follow with -f
    replog status                            # every node: role, status, acked seq, lag, last seen

`--node URL` (env `REPLOG_NODE`, default http://127.0.0.1:8000) picks the node; send and status
need the master, tail reads any node. Every append carries an idempotency key and is retried on
connection errors, 503 and 504 until `--deadline`, so a retried send never stores a line twice.
A failure prints one line on stderr and exits 1 (2 for bad arguments); never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from replog.client import Client, ClientError, GaveUp, NodeStatus, ReplogHTTPError

COMMANDS = ("send", "tail", "status")
DEFAULT_NODE = "http://127.0.0.1:8000"
BAR_WIDTH = 30


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="replog", description="Talk to a replog cluster.")
    commands = parser.add_subparsers(dest="command", required=True)
    node = argparse.ArgumentParser(add_help=False)
    node.add_argument(
        "--node", default=os.environ.get("REPLOG_NODE", DEFAULT_NODE), help="node URL [env REPLOG_NODE]"
    )
    node.add_argument(
        "--deadline", type=_positive_float, default=60.0, help="seconds per call, retries included"
    )

    send = commands.add_parser("send", parents=[node], help="append a message, or lines of a file or stdin")
    send.add_argument("message", nargs="?", help="the message; '-' reads stdin line by line")
    send.add_argument("--file", type=Path, help="append each line of this file")
    send.add_argument("-w", default="1", help="write concern: 1..N, majority or all (default 1)")
    send.add_argument("--timeout", type=_positive_float, help="seconds the master may wait for w per try")
    send.add_argument("--batch", type=_positive_int, default=1000, help="lines per bulk request")

    tail = commands.add_parser("tail", parents=[node], help="print the last entries; -f to follow")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new entries")
    tail.add_argument("--from-seq", type=_positive_int, help="start at this seq (default: the last -n)")
    tail.add_argument("-n", "--lines", type=_positive_int, default=10, help="how many last entries")

    commands.add_parser("status", parents=[node], help="a table of the cluster's nodes")
    return parser


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}")
    return value


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {raw!r}")
    return value


def _w(raw: str) -> int | str:
    return int(raw) if raw.isdigit() else raw


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        with Client(args.node, deadline_s=args.deadline) as client:
            if args.command == "send":
                return send(client, args)
            if args.command == "tail":
                return tail(client, args)
            return status(client)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `replog tail | head`: the reader is done
        _quiet_stdout()
        return 0
    except GaveUp as exc:
        return _fail(f"{args.node}: {_why(exc.last) if exc.last else exc}")
    except ClientError as exc:
        return _fail(f"{args.node}: {_why(exc)}")
    except OSError as exc:  # a file that cannot be read
        return _fail(str(exc))


def _why(exc: BaseException) -> str:
    if isinstance(exc, ReplogHTTPError):
        return f"{exc.status} {exc.code}: {exc.body.get('detail', '')}"
    text = str(exc)
    if "Connection refused" in text or "Failed to establish" in text:
        return "cannot connect (is the node running?)"
    return text.splitlines()[0] if text else type(exc).__name__


def _fail(message: str) -> int:
    print(f"replog: error: {message}", file=sys.stderr)
    return 1


def _quiet_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


# --- send ------------------------------------------------------------------------------------------
def send(client: Client, args: argparse.Namespace) -> int:
    if args.file is not None and args.message is not None:
        return _usage("give a MESSAGE, '-' or --file, not both")
    if args.file is None and args.message is None:
        return _usage("give a MESSAGE, '-' (stdin) or --file FILE")
    w = _w(args.w)
    if args.file is None and args.message != "-":
        if not args.message:
            return _usage("the message is empty")
        result = client.append(args.message, w, timeout_s=args.timeout)
        again = " (already stored)" if result.duplicate else ""
        print(f"seq={result.seq} w={result.w} acks={result.acks}{again}")
        return 0
    if args.file is not None:
        total = _count_lines(args.file)
        with args.file.open(encoding="utf-8") as lines:
            return _send_lines(client, lines, w, args, total)
    return _send_lines(client, sys.stdin, w, args, None)


def _usage(message: str) -> int:
    print(f"replog send: error: {message}", file=sys.stderr)
    return 2


def _count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as lines:
        return sum(1 for line in lines if line.rstrip("\r\n"))


def _batches(lines: TextIO, size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in lines:
        message = line.rstrip("\r\n")
        if not message:
            continue  # an empty line is no message
        batch.append(message)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _send_lines(
    client: Client, lines: TextIO, w: int | str, args: argparse.Namespace, total: int | None
) -> int:
    bar = Progress(total) if sys.stderr.isatty() else None
    sent, first, last = 0, None, None
    try:
        for batch in _batches(lines, args.batch):
            result = client.append_many(batch, w, timeout_s=args.timeout)
            sent += len(batch)
            first = min(result.seqs) if first is None else first
            last = max(result.seqs)
            if bar is not None:
                bar.show(sent)
    finally:
        if bar is not None:
            bar.done()
    print(f"sent {sent} messages" + (f" seqs={first}..{last}" if sent else ""))
    return 0


class Progress:
    """A one-line progress bar on stderr (a terminal only), redrawn in place."""

    def __init__(self, total: int | None) -> None:
        self.total = total

    def show(self, done: int) -> None:
        if self.total:
            filled = BAR_WIDTH * done // self.total
            text = f"[{'#' * filled}{' ' * (BAR_WIDTH - filled)}] {done}/{self.total}"
        else:
            text = f"{done} sent"
        sys.stderr.write("\r" + text)
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


FOLLOW_WAIT_S = 5.0  # one long poll of `tail -f`: also how late a dropped Ctrl-C can end it


# --- tail and status -------------------------------------------------------------------------------
def tail(client: Client, args: argparse.Namespace) -> int:
    if args.from_seq is not None:
        start = args.from_seq
        first = client.entries(start, args.lines, node=args.node)  # also: is the node there at all?
        for entry in first:
            print(f"{entry.seq}\t{entry.message}", flush=True)
        if not args.follow:
            return 0
        start = first[-1].seq + 1 if first else start
    else:
        last = client.tail(args.lines, node=args.node)
        for entry in last:
            print(f"{entry.seq}\t{entry.message}", flush=True)
        if not args.follow:
            return 0
        start = last[-1].seq + 1 if last else 1
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: object) -> None:
        # Ctrl-C normally ends the follow as a KeyboardInterrupt; but one raised while the
        # interpreter runs a finaliser (a closed socket's __del__, say) is printed and dropped, and
        # the follow would go on forever. The flag ends it at the next long poll regardless.
        interrupted.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        for entry in client.follow(start, node=args.node, wait_s=FOLLOW_WAIT_S, stop=interrupted.is_set):
            print(f"{entry.seq}\t{entry.message}", flush=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    return 130 if interrupted.is_set() else 0


def status(client: Client) -> int:
    rows = client.status()
    print(format_table(rows))
    return 0


def format_table(rows: Sequence[NodeStatus]) -> str:
    header = ("NODE", "ROLE", "STATUS", "ACKED SEQ", "LAG", "LAST SEEN")
    cells = [header] + [
        (
            r.node, r.role, r.status, str(r.acked_seq), str(r.lag),
            "-" if r.last_seen_s is None else f"{r.last_seen_s:.1f}s ago",
        )
        for r in rows
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )

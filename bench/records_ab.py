"""A/B of the record scan between two source trees, in one run: recovery and decode_run speed.

    python bench/records_ab.py --base /tmp/replog-base [--count 1000000] [--rounds 3]

`--base` is another checkout of replog (e.g. `git archive 649a1a3 | tar -x -C /tmp/replog-base`).
Each measurement runs in a fresh subprocess with PYTHONPATH set to one tree, interleaved base, this
tree, base, ... and the best of `--rounds` is reported, in CPU seconds of the process (not wall
time), since this machine is shared and other processes' load would otherwise swamp the
difference. The data directories are written once: one by the base tree's own DiskStore (its
record format, v1 before epochs) and one by this tree's (v2). Not a test: it prints numbers.

    python bench/records_ab.py --measure DATA_DIR    # (internal) one timing, JSON on stdout
    python bench/records_ab.py --make DATA_DIR N     # (internal) write N entries with this tree
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from replog.core import records  # whichever tree PYTHONPATH names: each subprocess runs one
from replog.storage.disk import DiskStore, FsyncPolicy

HERE = Path(__file__).resolve().parent.parent
MESSAGE = "x" * 100


def make(data_dir: Path, count: int) -> None:
    store = DiskStore.open(data_dir, fsync=FsyncPolicy.NEVER, new_log_id="bench")
    for _ in range(count // 1000):
        store.append([MESSAGE] * 1000)
    store.close()


def measure(data_dir: Path) -> dict[str, float]:
    """Time records.recover over the whole file, decode_run over all of it, and DiskStore.open."""
    path = data_dir / "entries.dat"
    data = path.read_bytes()  # in memory: times the scan, not the disk
    t0 = time.process_time()
    found = records.recover(lambda offset, n: data[offset : offset + n], len(data), path)
    recover_s = time.process_time() - t0
    t0 = time.process_time()
    entries = records.decode_run(data, 1, 0, path)
    decode_s = time.process_time() - t0
    assert len(entries) == len(found.offsets)
    del entries
    t0 = time.process_time()
    store = DiskStore.open(data_dir)
    open_s = time.process_time() - t0
    store.close()
    count = len(found.offsets)
    return {"recover_s": recover_s, "decode_run_s": decode_s, "store_open_s": open_s, "count": count}


def run(tree: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, str(HERE / "bench" / "records_ab.py"), *args],
        env=env, check=True, capture_output=True, text=True, cwd=tree,
    )  # fmt: skip
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="the other source tree (A)")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--make", nargs=2, metavar=("DIR", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        make(Path(args.make[0]), int(args.make[1]))
        return
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    if args.base is None:
        parser.error("--base is required")
    with tempfile.TemporaryDirectory(prefix="replog-records-ab-") as tmp:
        v1_dir, v2_dir = Path(tmp) / "v1", Path(tmp) / "v2"
        run(args.base, "--make", str(v1_dir), str(args.count))
        run(HERE, "--make", str(v2_dir), str(args.count))
        cases = {"base on its own log": (args.base, v1_dir), "this tree on that log": (HERE, v1_dir),
                 "this tree on its own log": (HERE, v2_dir)}  # fmt: skip
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):
            for name, (tree, data_dir) in cases.items():
                got = json.loads(run(tree, "--measure", str(data_dir)))
                kept = best.setdefault(name, got)
                for key in ("recover_s", "decode_run_s", "store_open_s"):
                    kept[key] = min(kept[key], got[key])
        sizes = {name: (d / "entries.dat").stat().st_size for name, d in (("v1", v1_dir), ("v2", v2_dir))}
    print(f"{args.count:,} entries of {len(MESSAGE)} bytes; file v1 {sizes['v1']:,} B, v2 {sizes['v2']:,} B; "
          f"best of {args.rounds}, interleaved")  # fmt: skip
    print(f"CPU s: {'case':<19} {'recover':>10} {'decode_run':>13} {'DiskStore.open':>17}")
    for name, got in best.items():
        times = f"{got['recover_s']:>10.3f} {got['decode_run_s']:>13.3f} {got['store_open_s']:>17.3f}"
        print(f"{name:<26} {times}")


if __name__ == "__main__":
    main()

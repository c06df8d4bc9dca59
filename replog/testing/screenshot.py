"""`python -m replog.testing.screenshot docs/live-page.png`: a picture of the live page for the docs.

Starts a local cluster (in-memory logs, short timings), appends at a modest, varying rate with mixed
w for `--seconds` so the charts have something to show, then saves a screenshot of the master's
page with three Healthy nodes.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

from replog.client import poll_until
from replog.testing.browser import find_chromium, headless_chromium, latest_messages, node_statuses
from replog.testing.cluster import LocalCluster


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=75.0, help="how long to append before the picture")
    args = parser.parse_args()
    found = find_chromium()
    if found is None:
        print("chromium and chromedriver are needed: .ci/install-browser.sh", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="replog-shot-") as root:
        cluster = LocalCluster(
            Path(root),
            master_argv=("--heartbeat-interval=0.2", "--suspect-after=1", "--unhealthy-after=3"),
            common_argv=("--in-memory",),
            log_dir=Path(root),
        )
        cluster.up()
        driver = headless_chromium(*found, height=1100)
        try:
            driver.get(cluster.master.url + "/")
            ws = itertools.cycle([1, 2, 3, 2])
            started, n, last = time.monotonic(), 0, ""
            while (elapsed := time.monotonic() - started) < args.seconds:
                burst = 20 + int(15 * (1 + (elapsed // 10) % 3))  # steps in the rate, for the chart
                for _ in range(burst):
                    n += 1
                    last = f"order-{n:05d} sku-{n % 97} qty={n % 7 + 1}"
                    cluster.client.append(last, next(ws))
                time.sleep(0.25)  # pacing the load, not waiting for anything
            poll_until(lambda: set(node_statuses(driver).values()) == {"Healthy"}, 10, 0.1, "all Healthy")
            poll_until(
                lambda: latest_messages(driver)[:1] == [last] or not last, 10, 0.1, "last append shown"
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
            cluster.stop()
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
